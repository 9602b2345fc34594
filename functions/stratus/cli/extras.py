"""Which optional extra of the ``stratus-index`` distribution a missing module belongs to.

``pip install stratus-index`` is what a publisher's or admin's machine needs (``stratus
serve`` on local files and SQLite, ``stratus upload``, ``hash-password``, the ACL and
rebuild commands). What talks to AWS (S3, DynamoDB, Secrets Manager, CloudWatch, the
Lambda handlers) needs the ``aws`` extra, an LDAP directory the ``ldap`` extra. A command
that reaches such code without its extra says which one to install instead of a
traceback.
"""

from __future__ import annotations

DISTRIBUTION = "stratus-index"
# Top-level import name -> the extra that installs it (pyproject.toml's optional deps).
EXTRA_OF_MODULE = {
    "boto3": "aws",
    "botocore": "aws",
    "s3transfer": "aws",
    "pynamodb": "aws",
    "mangum": "aws",
    "aws_lambda_powertools": "aws",
    "aws_xray_sdk": "aws",
    "ldap3": "ldap",
}


def missing_extra(exc: ImportError) -> str | None:
    """The extra that provides the module ``exc`` could not import, or None if none does."""
    name = exc.name or ""
    return EXTRA_OF_MODULE.get(name.partition(".")[0])


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"
