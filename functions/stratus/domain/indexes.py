"""Indexes: the namespaces of the catalog's keys.

Every project stored here belongs to an index, and the index is part of every catalog key
(DynamoDB partition keys, SQLite primary keys). Today there is one, ``default``; devpi-style
indexes with bases (``user/name``) or CodeArtifact-style repositories with upstreams add
more later without rewriting any stored item. The upstream (``pypi.fallback_base_url``) is
not an index here: it is a read-only mirror whose pages are cached under its own name.
"""

from __future__ import annotations

import re

DEFAULT_INDEX = "default"
# Lower-case words of letters, digits, ".", "_", "-", optionally "user/name" as in devpi.
# Never "#": the DynamoDB keys use it as the separator.
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(/[a-z0-9][a-z0-9._-]{0,62})?")


def check_index_name(name: str) -> str:
    """Return ``name`` if it can name an index; raise ``ValueError`` otherwise."""
    if not isinstance(name, str) or not _INDEX_NAME.fullmatch(name):
        raise ValueError(
            f"invalid index name {name!r}: lower-case letters, digits, '.', '_' and '-', "
            "optionally as 'user/name'"
        )
    return name
