"""The prediction API (`protolab serve`): API keys, micro-batching, the FastAPI app and the code snippets the
demo pages show for calling it."""
