"""Data: sources (files, DataFrames, bundled datasets), splits and in-memory batches."""
