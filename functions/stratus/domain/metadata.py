"""Core metadata extraction from wheels and sdists (for PEP 658 and the index pages).

Archives are read through ``archives`` (hard caps while decompressing) and the METADATA /
PKG-INFO file is parsed with ``packaging.metadata`` (UTF-8 as PEP 566 says, a field
given twice or not decodable is reported, not guessed). The fields Stratus keeps (Name,
Version, Summary, Requires-Python, Metadata-Version) are validated one by one with
packaging's own rules plus length limits; other fields are served as they are, since
real wheels carry fields newer than their Metadata-Version (``License-File`` in 2.1 from
setuptools, ``License-Expression`` in 2.3 from hatchling) that installers and PyPI accept.

``strict`` (uploads): a field Stratus keeps that is invalid is a 400 naming it, the
METADATA Name and Version must agree with the filename, and an sdist must contain a
PKG-INFO. Not strict (objects already in the bucket, written by sync or another tool): an
invalid field is left out instead, so what was once accepted stays indexed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, BinaryIO

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import archives, limits
from .distributions import DistFilename
from .errors import InvalidInput

# PEP 643: sdist metadata is only reliable (fields not Dynamic) from Metadata-Version 2.2.
MIN_SDIST_METADATA_VERSION = Version("2.2")

# Fields kept in the index: packaging attribute → (core metadata field, longest value).
_KEPT = {
    "metadata_version": ("Metadata-Version", 16),
    "name": ("Name", limits.MAX_NAME_LENGTH),
    "version": ("Version", limits.MAX_VERSION_LENGTH),
    "summary": ("Summary", limits.MAX_SUMMARY_LENGTH),
    "requires_python": ("Requires-Python", limits.MAX_REQUIRES_PYTHON_LENGTH),
}


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    core_metadata_bytes: bytes | None  # the PEP 658 file to serve, or None if not servable
    name: str | None
    version: str | None
    requires_python: str | None
    summary: str | None
    metadata_version: str | None = None
    # The METADATA / PKG-INFO file as read, servable or not (for the long description).
    source: bytes | None = None


def has_control_characters(text: str) -> bool:
    """True if ``text`` holds a control character (C0, DEL, C1) other than tab."""
    return any(c != "\t" and unicodedata.category(c) == "Cc" for c in text)


def _check_field(attribute: str, value: object) -> str | None:
    """Stratus's checks on top of packaging's: length, one line, no control characters."""
    field, longest = _KEPT[attribute]
    if not isinstance(value, str):
        return f"{field} must be given once"
    if len(value) > longest:
        return f"{field} is longer than {longest} characters"
    if has_control_characters(value):
        return f"{field} contains control characters"
    return None


def parse(raw: bytes, *, source: str, strict: bool) -> CoreMetadata:
    """Parse a METADATA / PKG-INFO file; ``source`` names it in error messages."""
    # Here, not at the top: only uploads (and reindexing) parse core metadata, and
    # packaging.metadata with what it imports is ~10 ms of a cold start that serves pip.
    from packaging.metadata import InvalidMetadata, Metadata, parse_email

    fields, unparsed = parse_email(raw)
    loose = Metadata.from_raw(fields, validate=False)
    given: dict[str, Any] = dict(fields)  # looked up by our names, not literal keys
    values: dict[str, str | None] = {}
    problems: list[str] = []
    for attribute, (field, _) in _KEPT.items():
        values[attribute] = None
        if attribute in unparsed:
            problems.append(f"{field} is given more than once or is not valid UTF-8")
            continue
        problem = _check_field(attribute, given[attribute]) if attribute in given else None
        if problem is None:
            try:
                parsed = getattr(loose, attribute)  # packaging validates on access
            except InvalidMetadata as exc:
                problem = f"{field}: {exc}"
            except ValueError as exc:  # e.g. int() of a huge version component
                problem = f"{field}: {exc}"
            else:
                values[attribute] = None if parsed is None else str(given[attribute])
        if problem is not None:
            problems.append(problem)
    if problems and strict:
        raise InvalidInput(f"Invalid {source}: " + "; ".join(problems) + ".")
    return CoreMetadata(
        core_metadata_bytes=raw,
        name=values["name"],
        version=values["version"],
        requires_python=values["requires_python"] or None,
        summary=values["summary"],
        metadata_version=values["metadata_version"],
        source=raw,
    )


def check_matches_filename(meta: CoreMetadata, dist: DistFilename, source: str) -> None:
    """The metadata's Name and Version must be the filename's (normalized) project and version."""
    if meta.name is None or canonicalize_name(meta.name) != dist.project:
        raise InvalidInput(
            f"The {source} field Name {meta.name!r} does not match the project "
            f"{dist.project!r} of the filename {dist.filename!r}."
        )
    try:
        same = meta.version is not None and Version(meta.version) == dist.version
    except InvalidVersion:
        same = False
    if not same:
        raise InvalidInput(
            f"The {source} field Version {meta.version!r} does not match the version "
            f"{str(dist.version)!r} of the filename {dist.filename!r}."
        )


def _from_wheel(data: archives.Source, dist: DistFilename, strict: bool) -> CoreMetadata:
    label = f"wheel {dist.filename!r}"
    with archives.open_zip(data, label) as zf:
        candidates = [
            info
            for info in zf.infolist()
            if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise InvalidInput(
                f"Invalid {label}: expected exactly one *.dist-info/METADATA file, "
                f"found {len(candidates)}."
            )
        raw = archives.read_zip_member(data, zf, candidates[0], label)
    meta = parse(raw, source=f"METADATA of {label}", strict=strict)
    if strict:
        check_matches_filename(meta, dist, "METADATA")
    return meta


def _is_pkg_info(name: str) -> bool:
    parts = name.strip("/").split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"


def _from_sdist(data: archives.Source, dist: DistFilename, strict: bool) -> CoreMetadata:
    label = f"source distribution {dist.filename!r}"
    raw: bytes | None = None
    if dist.filename.endswith(".zip"):
        with archives.open_zip(data, label) as zf:
            for info in zf.infolist():
                if _is_pkg_info(info.filename) and not info.is_dir():
                    raw = archives.read_zip_member(data, zf, info, label)
                    break
    else:
        raw = archives.read_tar_gz_member(
            data, lambda member: member.isfile() and _is_pkg_info(member.name), label
        )
    if raw is None:
        if strict:
            raise InvalidInput(f"Invalid {label}: it has no top-level PKG-INFO file.")
        return CoreMetadata(None, None, None, None, None)
    meta = parse(raw, source=f"PKG-INFO of {label}", strict=strict)
    if strict:
        check_matches_filename(meta, dist, "PKG-INFO")
    try:
        servable = Version(meta.metadata_version or "0") >= MIN_SDIST_METADATA_VERSION
    except InvalidVersion:
        servable = False
    if not servable:
        # Still useful for Requires-Python, but not servable as PEP 658 metadata.
        return CoreMetadata(
            None,
            meta.name,
            meta.version,
            meta.requires_python,
            meta.summary,
            meta.metadata_version,
            source=raw,
        )
    return meta


def extract(data: bytes | BinaryIO, dist: DistFilename, *, strict: bool = True) -> CoreMetadata:
    """Read the core metadata of a distribution (bytes, or a seekable binary file read in
    the few places needed); raise InvalidInput for a broken archive."""
    return _extract(data, dist, strict)


def extract_from(fileobj: BinaryIO, dist: DistFilename, *, strict: bool = True) -> CoreMetadata:
    """``extract`` on a seekable binary file, under the same caps (``archives``): a zip
    is read from its central directory (a few small reads at the end, then the METADATA
    member), a tar.gz from its start up to the top-level PKG-INFO."""
    return _extract(fileobj, dist, strict)


def _extract(source: archives.Source, dist: DistFilename, strict: bool) -> CoreMetadata:
    if dist.kind == "bdist_wheel":
        return _from_wheel(source, dist, strict)
    return _from_sdist(source, dist, strict)
