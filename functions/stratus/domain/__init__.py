"""Pure domain logic: no web framework, boto3 or pynamodb imports, so it stays fast and testable."""
