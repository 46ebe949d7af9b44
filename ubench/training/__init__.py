"""Optimisation loops shared by methods, attacks and asset builders: the resumable unlearning
loop, base-model training and GPU pretraining."""
