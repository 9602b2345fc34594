"""The object metadata written with each distribution, so the bucket alone can rebuild the index.

S3 user metadata must be ASCII and small (2 KB), so values are percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from .models import FileRecord

_FIELDS = (
    "project",
    "display_name",
    "version",
    "sha256",
    "packagetype",
    "requires_python",
    "metadata_sha256",
    "uploader",
    "upload_time",
    "md5",
    "blake2_256",
)


def to_object_metadata(record: FileRecord) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        if value is None or value == "":
            continue
        out[f"stratus-{name.replace('_', '-')}"] = quote(str(value), safe="")
    return out


def from_object_metadata(filename: str, size: int, metadata: dict[str, str]) -> FileRecord | None:
    """Rebuild a record from object metadata; None if it was not written by Stratus."""
    values: dict[str, str] = {}
    for name in _FIELDS:
        raw = metadata.get(f"stratus-{name.replace('_', '-')}")
        if raw is not None:
            values[name] = unquote(raw)
    if not {"project", "version", "sha256"} <= values.keys():
        return None
    return FileRecord(
        project=values["project"],
        filename=filename,
        version=values["version"],
        sha256=values["sha256"],
        size=size,
        upload_time=float(values.get("upload_time", "0")),
        display_name=values.get("display_name", values["project"]),
        packagetype=values.get("packagetype", "sdist"),
        requires_python=values.get("requires_python"),
        metadata_sha256=values.get("metadata_sha256"),
        uploader=values.get("uploader"),
        md5=values.get("md5"),
        blake2_256=values.get("blake2_256"),
    )
