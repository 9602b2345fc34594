"""The object metadata written with each distribution, so the bucket alone can rebuild the index.

S3 user metadata travels in HTTP headers: values must be ASCII and names plus values take
at most 2 KB. Values are therefore percent-encoded UTF-8 (``quote``/``unquote``), which
carries any text (a non-ASCII Summary or display name) through S3, moto and the local
storage's sidecars alike. When the encoded record would not fit in 2 KB (a long
non-ASCII Summary), only the provenance (uploader, upload time) is written: sync and
reconcile then describe the object from its bytes, as they do for objects that did not
come through the API.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from .models import FileRecord

# S3's limit on user-defined metadata (names plus values); both storage adapters apply it.
MAX_OBJECT_METADATA_BYTES = 2048

_FIELDS = (
    "project",
    "display_name",
    "version",
    "sha256",
    "packagetype",
    "requires_python",
    "summary",
    "metadata_sha256",
    "uploader",
    "upload_time",
    "md5",
    "blake2_256",
)
_PROVENANCE = ("uploader", "upload_time")
_REQUIRED = frozenset({"project", "version", "sha256"})
# Written with an upload session's object stored in place (``domain.keys.PENDING_UPLOAD_TAG``):
# the session's id, so its completion knows the object at the key is its own.
SESSION_MARKER = "stratus-session"


def _name(field: str) -> str:
    return f"stratus-{field.replace('_', '-')}"


def _encode(record: FileRecord, fields: tuple[str, ...]) -> dict[str, str]:
    return _encode_values({field: getattr(record, field) for field in fields})


def _encode_values(values: dict[str, object]) -> dict[str, str]:
    return {
        _name(field): quote(str(value), safe="")
        for field, value in values.items()
        if value is not None and value != ""
    }


def _size(metadata: dict[str, str]) -> int:
    return sum(len(name) + len(value) for name, value in metadata.items())


def to_object_metadata(record: FileRecord) -> dict[str, str]:
    """The record as S3 user metadata: all of it, or only its provenance if it is too large."""
    out = _encode(record, _FIELDS)
    if _size(out) <= MAX_OBJECT_METADATA_BYTES:
        return out
    out = _encode(record, _PROVENANCE)
    return out if _size(out) <= MAX_OBJECT_METADATA_BYTES else _encode(record, ("upload_time",))


def provenance_metadata(uploader: str | None, upload_time: float) -> dict[str, str]:
    """Only the provenance (uploader, upload time), encoded as ``to_object_metadata`` does:
    what an object carries when its record is not known yet (an upload session's bytes)."""
    return _encode_values({"uploader": uploader, "upload_time": upload_time})


def session_of(metadata: dict[str, str]) -> str | None:
    """The upload session that stored an object in place (its marker), if one did."""
    return metadata.get(SESSION_MARKER) or None


def _decoded(metadata: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for field in _FIELDS:
        raw = metadata.get(_name(field))
        if raw is not None:
            values[field] = unquote(raw, errors="strict")
    return values


def provenance(metadata: dict[str, str]) -> tuple[str | None, float | None]:
    """``(uploader, upload_time)`` written with an object, when they were."""
    try:
        values = _decoded(metadata)
        upload_time = float(values["upload_time"]) if "upload_time" in values else None
    except (UnicodeDecodeError, ValueError):
        return None, None
    return values.get("uploader"), upload_time


def from_object_metadata(filename: str, size: int, metadata: dict[str, str]) -> FileRecord | None:
    """Rebuild a record from object metadata; None if it does not carry a whole record."""
    try:
        values = _decoded(metadata)
        upload_time = float(values.get("upload_time", "0"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not values.keys() >= _REQUIRED:
        return None
    return FileRecord(
        project=values["project"],
        filename=filename,
        version=values["version"],
        sha256=values["sha256"],
        size=size,
        upload_time=upload_time,
        display_name=values.get("display_name", values["project"]),
        packagetype=values.get("packagetype", "sdist"),
        requires_python=values.get("requires_python"),
        summary=values.get("summary"),
        metadata_sha256=values.get("metadata_sha256"),
        uploader=values.get("uploader"),
        md5=values.get("md5"),
        blake2_256=values.get("blake2_256"),
    )
