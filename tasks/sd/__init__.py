"""Stable Diffusion tasks (sd-*)."""
