"""Experiment tracking: every Protolab run in MLflow (core.tracking.mlflow_runs), its model as a pyfunc."""
