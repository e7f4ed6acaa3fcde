"""Protolab core: plain, typed Python behind the Streamlit pages, the CLI and the worker.

Nothing in this package imports streamlit; heavy libraries (torch, transformers)
are imported inside the functions that need them so start-up stays fast.
"""

__version__ = "0.1.0"
