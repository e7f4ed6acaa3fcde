"""Data health: which rows of a classification dataset to look at (label errors, near-duplicates, leakage,
oddities), and what a zero-label baseline gets from label names alone."""
