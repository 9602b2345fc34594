"""Distribution filenames: parsing, validation against the upload form, and path safety."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .errors import InvalidInput
from .names import normalize

MAX_FILENAME_LENGTH = 255


@dataclass(frozen=True, slots=True)
class DistFilename:
    filename: str
    project: str  # normalized
    version: Version
    kind: str  # "bdist_wheel" | "sdist"

    @property
    def packagetype(self) -> str:
        return self.kind


def check_safe_filename(filename: str) -> None:
    """Reject anything that could escape a storage prefix or confuse a path join."""
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidInput("Invalid filename: empty or longer than 255 characters.")
    if (
        "/" in filename
        or "\\" in filename
        or filename.startswith(".")
        or ".." in filename
        or ":" in filename
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in filename)
    ):
        raise InvalidInput(
            f"Invalid filename {filename!r}: a distribution filename may not contain path "
            "separators, '..', ':', a leading dot or control characters."
        )


def parse(filename: str) -> DistFilename:
    """Parse a wheel or sdist filename; raise :class:`InvalidInput` if it is neither."""
    check_safe_filename(filename)
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return DistFilename(filename, normalize(name), version, "bdist_wheel")
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return DistFilename(filename, normalize(name), version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise InvalidInput(f"Invalid distribution filename {filename!r}: {exc}") from None
    raise InvalidInput(
        f"Invalid distribution filename {filename!r}: only wheels (.whl) and source "
        "distributions (.tar.gz, .zip) are accepted."
    )


def check_matches_form(dist: DistFilename, name: str, version: str) -> None:
    """The filename must name the same project and version as the upload form fields."""
    if normalize(name) != dist.project:
        raise InvalidInput(
            f"Filename {dist.filename!r} does not match the project name {name!r} of the upload."
        )
    try:
        form_version = Version(version)
    except InvalidVersion:
        raise InvalidInput(f"Invalid version {version!r}: not a PEP 440 version.") from None
    if form_version != dist.version:
        raise InvalidInput(
            f"Filename {dist.filename!r} does not match the version {version!r} of the upload."
        )
