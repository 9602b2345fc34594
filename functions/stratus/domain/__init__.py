"""Pure domain logic: no FastAPI, boto3 or pynamodb imports here, so it stays fast and testable."""
