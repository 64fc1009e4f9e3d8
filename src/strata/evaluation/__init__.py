"""Evaluation: metrics, plots and their presentation."""
