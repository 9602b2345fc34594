"""The Stratus CDK app (see app.py)."""
