"""The HTTP surface: one Starlette app for Lambda and local mode, one module per protocol."""
