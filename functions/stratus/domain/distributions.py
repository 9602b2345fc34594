"""Distribution filenames: parsing, validation against the upload form, and path safety.

A filename becomes a storage key, a URL path segment and HTML text, so it is held to a
small ASCII alphabet before ``packaging`` parses it: letters, digits and ``. _ + ! -``
(wheel tags, ``+local`` versions and ``N!`` epochs need nothing else). ``#``, ``?``,
``%``, ``/``, spaces, control characters and look-alikes such as the Kelvin sign ``K``
(which case-insensitive matching would take for ``K``) are refused with a 400 naming
the character.

``strict`` (uploads) also requires the canonical form PEP 427 / PEP 625 define: the
name part is the normalized name with ``_`` for separators (``foo_bar``, never
``Foo.Bar``) and the version part is the normalized version (``1.0``, never ``01.0``).
Not strict (objects found in the bucket) accepts legacy spellings that still parse.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from . import limits
from .errors import InvalidInput
from .names import normalize

MAX_FILENAME_LENGTH = limits.MAX_FILENAME_LENGTH
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+!-")
_SDIST_SUFFIXES = (".tar.gz", ".zip")


@dataclass(frozen=True, slots=True)
class DistFilename:
    filename: str
    project: str  # normalized
    version: Version
    kind: str  # "bdist_wheel" | "sdist"

    @property
    def packagetype(self) -> str:
        return self.kind


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"{char!r} (U+{ord(char):04X}{' ' + name if name else ''})"


def check_safe_filename(filename: str) -> None:
    """Reject anything that could escape a storage prefix, a URL segment or an attribute."""
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidInput(
            f"Invalid filename: empty or longer than {MAX_FILENAME_LENGTH} characters."
        )
    bad = next((c for c in filename if c not in _ALLOWED), None)
    if bad is not None:
        raise InvalidInput(
            f"Invalid filename {filename!r}: character {_describe(bad)} is not allowed; "
            "distribution filenames use only ASCII letters, digits and '.', '_', '+', '!', "
            "'-'."
        )
    if filename.startswith(".") or ".." in filename:
        raise InvalidInput(
            f"Invalid filename {filename!r}: a distribution filename may not start with a "
            "dot or contain '..'."
        )


def _canonical_form(filename: str, name: str, version: Version) -> str:
    """The filename as PEP 427 / PEP 625 spell it, from what was parsed."""
    name_part = canonicalize_name(name).replace("-", "_")
    if filename.endswith(".whl"):
        rest = filename[:-4].split("-", 2)[2]  # [build tag-]python-abi-platform
        return f"{name_part}-{version}-{rest}.whl"
    suffix = next(s for s in _SDIST_SUFFIXES if filename.endswith(s))
    return f"{name_part}-{version}{suffix}"


def parse(filename: str, *, strict: bool = True) -> DistFilename:
    """Parse a wheel or sdist filename; raise :class:`InvalidInput` if it is neither."""
    check_safe_filename(filename)
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            kind = "bdist_wheel"
        elif filename.endswith(_SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            kind = "sdist"
        else:
            raise InvalidInput(
                f"Invalid distribution filename {filename!r}: only wheels (.whl) and source "
                "distributions (.tar.gz, .zip) are accepted."
            )
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion, ValueError) as exc:
        raise InvalidInput(f"Invalid distribution filename {filename!r}: {exc}") from None
    if strict:
        expected = _canonical_form(filename, name, version)
        if filename != expected:
            raise InvalidInput(
                f"Invalid distribution filename {filename!r}: not in canonical form, expected "
                f"{expected!r} (PEP 427 / PEP 625: normalized name with '_' as separator, "
                "normalized version). Rebuild it with a current build backend."
            )
    return DistFilename(filename, normalize(name), version, kind)


def parse_version_field(version: str) -> Version:
    """The upload form's ``version`` field, bounded before it is parsed."""
    if len(version) > limits.MAX_VERSION_LENGTH:
        raise InvalidInput(f"Invalid version: longer than {limits.MAX_VERSION_LENGTH} characters.")
    if not version.isascii() or not version.isprintable():
        raise InvalidInput(f"Invalid version {version!r}: not a PEP 440 version.")
    try:
        return Version(version)
    except (InvalidVersion, ValueError):
        raise InvalidInput(f"Invalid version {version!r}: not a PEP 440 version.") from None


def check_matches_form(dist: DistFilename, name: str, version: str) -> None:
    """The filename must name the same project and version as the upload form fields."""
    if normalize(name) != dist.project:
        raise InvalidInput(
            f"The form field name {name!r} does not match the project name {dist.project!r} "
            f"of the filename {dist.filename!r}."
        )
    if parse_version_field(version) != dist.version:
        raise InvalidInput(
            f"The form field version {version!r} does not match the version "
            f"{str(dist.version)!r} of the filename {dist.filename!r}."
        )
