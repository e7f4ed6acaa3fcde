"""Hyperparameter search: a run of runs, on Optuna (a study per search, each trial an ordinary queued run)."""
