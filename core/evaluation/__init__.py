"""Evaluating finished runs: metrics, prediction files, error analysis, comparison and the shareable report."""
