"""Project names as PEP 503 normalizes and validates them."""

from __future__ import annotations

import re

from packaging.utils import canonicalize_name

from .errors import InvalidInput
from .limits import MAX_NAME_LENGTH

# PEP 508 / core metadata "Name": ASCII letters, digits, and . _ - inside; alnum at both ends.
# packaging's own check (``canonicalize_name(validate=True)``) is not enough here: with
# IGNORECASE alone, [A-Z] also takes the Kelvin sign and the long s, and its ``$`` accepts
# a trailing newline. So: ASCII only, matched whole, bounded.
_VALID = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE | re.ASCII)


def normalize(name: str) -> str:
    """PEP 503 normalized form (``packaging.utils.canonicalize_name``)."""
    return canonicalize_name(name)


def is_valid(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _VALID.fullmatch(name) is not None


def validate(name: str) -> str:
    """Return the normalized name or raise :class:`InvalidInput` with a message for the client."""
    if not name or not is_valid(name):
        raise InvalidInput(
            f"Invalid project name {name[: MAX_NAME_LENGTH + 1]!r}: names may contain only ASCII "
            "letters, digits, '.', '_' and '-', must start and end with a letter or digit, "
            f"and may be at most {MAX_NAME_LENGTH} characters long."
        )
    return normalize(name)
