"""Protolab's tests: a regular package, so `tests.*` imports resolve here and not to a `tests` package some
dependency installs into site-packages (iterative-stratification ships one)."""
