"""The upstream index's project pages: what they list, parsed from PEP 691 JSON or PEP 503
HTML, and their compact form in the page cache.

Pure: bytes in, records out. Everything an upstream sends is bounded (page size, number of
files, length of every field) and validated (filenames with ``distributions.parse``,
hashes as hex, URLs as http(s)); what does not pass is left out, never stored.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from . import distributions
from .errors import InvalidInput

MAX_PAGE_BYTES = 32 * 1024 * 1024  # a 10,000-file JSON page is ~4 MB
MAX_FILES = 50_000
MAX_FIELD = 2048  # characters of any one string field (URLs, yank reasons, specifiers)
MAX_METADATA_BYTES = 4 * 1024 * 1024  # a PEP 658 file fetched from the upstream
_HEX64 = re.compile(r"[0-9a-f]{64}")

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.1"


@dataclass(frozen=True, slots=True)
class UpstreamFile:
    """One file of an upstream project page."""

    filename: str
    url: str  # absolute, no fragment
    version: str
    sha256: str | None = None
    requires_python: str | None = None
    yanked: str | None = None  # as FileRecord: None not yanked, "" without a reason
    has_metadata: bool = False  # PEP 658/714: "<url>.metadata" exists upstream
    metadata_sha256: str | None = None
    size: int | None = None
    upload_time: str | None = None  # ISO 8601, as the upstream gave it

    @property
    def metadata_url(self) -> str:
        return self.url + ".metadata"


@dataclass(frozen=True, slots=True)
class UpstreamPage:
    """An upstream project page as cached: its files, its ETag, when it was last checked.

    ``exists`` False records that the upstream has no such project (cached like a page,
    so a missing name does not ask the upstream on every request).
    """

    project: str
    files: tuple[UpstreamFile, ...] = ()
    etag: str | None = None
    checked_at: float = 0.0  # epoch seconds when the upstream last confirmed this page
    exists: bool = True
    # Filled by the first ``file`` lookup (a download): a page request lists ``files``
    # and never needs it. Not copied by ``replace``.
    _by_name: dict[str, UpstreamFile] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def file(self, filename: str) -> UpstreamFile | None:
        if not self._by_name and self.files:
            self._by_name.update((f.filename, f) for f in self.files)
        return self._by_name.get(filename)

    def checked(self, when: float) -> UpstreamPage:
        return replace(self, checked_at=when)


class Revalidated(Enum):
    """The upstream's answer to a conditional request: the cached page is still current."""

    NOT_MODIFIED = "not-modified"


NOT_MODIFIED = Revalidated.NOT_MODIFIED


@dataclass(frozen=True, slots=True)
class FillJob:
    """One cache fill handed to the fill function: a file of an upstream page."""

    project: str
    filename: str
    url: str
    sha256: str
    size: int | None = None
    yanked: str | None = None
    requested_by: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FillJob:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a fill job is a JSON object")
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]

    @classmethod
    def for_file(cls, project: str, file: UpstreamFile, requested_by: str | None) -> FillJob:
        if file.sha256 is None:
            raise InvalidInput(f"the upstream gives no sha256 for {file.filename}")
        return cls(
            project, file.filename, file.url, file.sha256, file.size, file.yanked, requested_by
        )


# --- parsing ------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        return None
    if any(ord(c) < 0x20 for c in value):
        return None
    return value


def _hex(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    text = text.strip().lower()
    return text if _HEX64.fullmatch(text) else None


def _absolute(page_url: str, href: str) -> tuple[str, str] | None:
    """(absolute URL without fragment, fragment) of a link, or None if not http(s)."""
    href = href.strip()
    if len(href) > MAX_FIELD:
        return None
    parts = urlsplit(urljoin(page_url, href))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")), parts.fragment


def _make_file(
    project: str, url: str, filename: str | None, **fields: object
) -> UpstreamFile | None:
    """A file of ``project`` if its name parses as a wheel or sdist of it; else None."""
    name = filename or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    try:
        dist = distributions.parse(name)
    except InvalidInput:
        return None
    if dist.project != project:
        return None
    return UpstreamFile(filename=name, url=url, version=str(dist.version), **fields)  # type: ignore[arg-type]


def _yank(value: object) -> str | None:
    if value is True:
        return ""
    if isinstance(value, str) and value:
        return _text(value) or ""
    return None


def _metadata(value: object) -> tuple[bool, str | None]:
    if value is True:
        return True, None
    if isinstance(value, dict):
        return True, _hex(value.get("sha256"))
    return False, None


def parse_json(body: bytes, page_url: str, project: str) -> tuple[UpstreamFile, ...]:
    """The files of a PEP 691 JSON project page."""
    if len(body) > MAX_PAGE_BYTES:
        raise InvalidInput("upstream page too large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("upstream page is not JSON") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise InvalidInput("upstream JSON page has no files list")
    out: list[UpstreamFile] = []
    for entry in files[:MAX_FILES]:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        located = _absolute(page_url, entry["url"])
        if located is None:
            continue
        hashes = entry.get("hashes")
        has_metadata, metadata_sha256 = _metadata(
            entry.get("core-metadata", entry.get("dist-info-metadata"))
        )
        size = entry.get("size")
        made = _make_file(
            project,
            located[0],
            _text(entry.get("filename")),
            sha256=_hex(hashes.get("sha256")) if isinstance(hashes, dict) else None,
            requires_python=_text(entry.get("requires-python")) or None,
            yanked=_yank(entry.get("yanked")),
            has_metadata=has_metadata,
            metadata_sha256=metadata_sha256,
            size=size if isinstance(size, int) and size >= 0 else None,
            upload_time=_text(entry.get("upload-time")),
        )
        if made is not None:
            out.append(made)
    return tuple(out)


class _AnchorParser(HTMLParser):
    """Collects the ``<a>`` tags of a PEP 503 page (attributes only; at most MAX_FILES)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and len(self.anchors) < MAX_FILES:
            self.anchors.append(dict(attrs))


def parse_html(body: bytes, page_url: str, project: str) -> tuple[UpstreamFile, ...]:
    """The files of a PEP 503 HTML project page (PEP 592 yanks, PEP 658/714 metadata)."""
    if len(body) > MAX_PAGE_BYTES:
        raise InvalidInput("upstream page too large")
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    parser.close()
    out: list[UpstreamFile] = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        located = _absolute(page_url, href) if href else None
        if located is None:
            continue
        url, fragment = located
        algorithm, _, digest = fragment.partition("=")
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        has_metadata = metadata is not None and metadata.lower() != "false"
        metadata_sha256 = None
        if metadata and metadata.lower().startswith("sha256="):
            metadata_sha256 = _hex(metadata[len("sha256=") :])
        yanked = attrs.get("data-yanked")
        made = _make_file(
            project,
            url,
            None,
            sha256=_hex(digest) if algorithm.lower() == "sha256" else None,
            requires_python=_text(attrs.get("data-requires-python")) or None,
            yanked=None if "data-yanked" not in attrs else (_text(yanked) or ""),
            has_metadata=has_metadata,
            metadata_sha256=metadata_sha256,
        )
        if made is not None:
            out.append(made)
    return tuple(out)


def parse_page(
    body: bytes, content_type: str, page_url: str, project: str
) -> tuple[UpstreamFile, ...]:
    """Parse by the response's content type: PEP 691 JSON, else PEP 503 HTML."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_V1 or media == "application/json":
        return parse_json(body, page_url, project)
    return parse_html(body, page_url, project)


# --- the page cache's form ----------------------------------------------------------------

_FILE_FIELDS = tuple(UpstreamFile.__dataclass_fields__)


def encode_page(page: UpstreamPage) -> bytes:
    """Compact, compressed form (zlib of JSON rows): ~100 bytes per file."""
    body = {
        "project": page.project,
        "etag": page.etag,
        "checked_at": page.checked_at,
        "exists": page.exists,
        "fields": _FILE_FIELDS,
        "files": [list(asdict(f).values()) for f in page.files],
    }
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)


def decode_page(blob: bytes) -> UpstreamPage:
    body = json.loads(zlib.decompress(blob))
    names = body["fields"]
    files = tuple(
        UpstreamFile(**{k: v for k, v in zip(names, row, strict=True) if k in _FILE_FIELDS})
        for row in body["files"]
    )
    return UpstreamPage(
        project=body["project"],
        files=files,
        etag=body.get("etag"),
        checked_at=float(body.get("checked_at", 0.0)),
        exists=bool(body.get("exists", True)),
    )
