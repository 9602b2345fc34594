"""Project names as PEP 503 normalizes and validates them."""

from __future__ import annotations

import re

from .errors import InvalidInput

_NORMALIZE = re.compile(r"[-_.]+")
# PEP 508 / core metadata "Name": ASCII letters, digits, and . _ - inside; alnum at both ends.
_VALID = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def normalize(name: str) -> str:
    """PEP 503 normalized form: lower case, runs of ``-_.`` collapsed to ``-``."""
    return _NORMALIZE.sub("-", name).lower()


def is_valid(name: str) -> bool:
    return bool(_VALID.match(name))


def validate(name: str) -> str:
    """Return the normalized name or raise :class:`InvalidInput` with a message for the client."""
    if not name or not is_valid(name):
        raise InvalidInput(
            f"Invalid project name {name!r}: names may contain only ASCII letters, digits, "
            "'.', '_' and '-', and must start and end with a letter or digit."
        )
    return normalize(name)
