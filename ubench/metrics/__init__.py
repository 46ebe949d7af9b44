"""Metric definitions: pure functions with bootstrap confidence intervals, plus registry classes."""
