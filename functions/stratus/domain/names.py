"""Project names as PEP 503 normalizes and validates them (``packaging`` does both)."""

from __future__ import annotations

from packaging.utils import InvalidName, canonicalize_name

from .errors import InvalidInput


def normalize(name: str) -> str:
    """PEP 503 normalized form: lower case, runs of ``-_.`` collapsed to ``-``."""
    return canonicalize_name(name)


def validate(name: str) -> str:
    """Return the normalized name or raise :class:`InvalidInput` with a message for the client."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise InvalidInput(
            f"Invalid project name {name!r}: names may contain only ASCII letters, digits, "
            "'.', '_' and '-', and must start and end with a letter or digit."
        ) from None
