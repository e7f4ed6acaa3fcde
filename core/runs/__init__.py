"""Background runs: the model-kind registry, run folders, starting/cancelling jobs, the worker, devices, DDP."""
