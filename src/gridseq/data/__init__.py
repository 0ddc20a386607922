"""Datasets: the data contract (split.py), built-in catalog, file readers, batching."""
