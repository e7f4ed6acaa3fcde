"""Datasets: reading uploads, guessing the mapping, validating, cleaning, splitting, storing, versioning, profiling."""
