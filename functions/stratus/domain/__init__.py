"""Pure domain logic: no web framework, boto3 or pynamodb imports here, so it stays fast and testable."""
