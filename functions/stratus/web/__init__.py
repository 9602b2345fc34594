"""The HTTP surface: one FastAPI app for Lambda and local mode, one module per protocol."""
