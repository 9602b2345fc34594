"""Stratus: a private Python package index, serverless on AWS or on one machine."""

__version__ = "0.1.0"
