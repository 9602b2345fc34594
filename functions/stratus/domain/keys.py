"""Where files live in storage. One place, so the API, sync and reconcile agree."""

from __future__ import annotations

PACKAGE_PREFIX = "packages/"
METADATA_SUFFIX = ".metadata"
# The long description, rendered to sanitized HTML at upload (the web UI's project page).
DESCRIPTION_SUFFIX = ".description.html"
SIDECAR_SUFFIXES = (METADATA_SUFFIX, DESCRIPTION_SUFFIX)


def file_key(project: str, filename: str) -> str:
    """Storage key of a distribution: ``packages/<normalized project>/<filename>``."""
    return f"{PACKAGE_PREFIX}{project}/{filename}"


def metadata_key(project: str, filename: str) -> str:
    return file_key(project, filename) + METADATA_SUFFIX


METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"  # of the PEP 658 file at metadata_key


def description_key(project: str, filename: str) -> str:
    """The rendered long description of a distribution, next to it."""
    return file_key(project, filename) + DESCRIPTION_SUFFIX


def split_key(key: str) -> tuple[str, str] | None:
    """``(project, filename)`` of a distribution key, or None for anything else (sidecars
    included)."""
    if not key.startswith(PACKAGE_PREFIX) or key.endswith(SIDECAR_SUFFIXES):
        return None
    rest = key[len(PACKAGE_PREFIX) :]
    parts = rest.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def sequencer_key(sequencer: str) -> str:
    """S3 sequencers compare as hex strings once padded to one length (AWS's guidance)."""
    return sequencer.rjust(32, "0")


UPLOAD_PREFIX = "uploads/"  # upload sessions' bytes before publication (never indexed)


def staging_key(session_id: str, filename: str) -> str:
    """Where an upload session's bytes wait for completion: ``uploads/<session>/<file>``."""
    return f"{UPLOAD_PREFIX}{session_id}/{filename}"


# An upload session that publishes in place (one PUT straight to ``file_key``) stores its
# object tagged ``stratus-upload=pending`` until the completion has checked it: sync and
# reconcile leave such an object alone, and the bucket's lifecycle rule expires it if the
# session is abandoned. The completion removes the tag before it adds the catalog entry.
PENDING_UPLOAD_TAG = ("stratus-upload", "pending")
