"""What the web UI's pages show, on ports only: project listings, search, project pages.

Visibility is the simple API's: a project is listed or shown only if
``AccessPolicy.can_read`` allows it, so the UI never reveals more than ``/simple/``.
Each page costs one catalog query (the project list, or one project's files); the
project page adds at most a few storage reads (the chosen file's core metadata and its
rendered description, both written at upload).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..domain.errors import NotFound
from ..domain.keys import metadata_key
from ..domain.models import FileRecord, Identity, ProjectSummary
from ..domain.names import normalize
from ..domain.versions import is_prerelease, version_key
from ..ports import Catalog, Storage
from .descriptions import read_description
from .policy import AccessPolicy

PER_PAGE = 50
MAX_QUERY_LENGTH = 200
MAX_DESCRIPTION_READS = 3  # files of one release tried for a stored description


# --- listings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    projects: list[ProjectSummary]  # the current page
    total: int  # matching projects, all pages
    total_files: int  # files of the matching projects
    page: int  # 1-based, clamped to [1, pages]
    pages: int  # at least 1


def readable_projects(
    catalog: Catalog, policy: AccessPolicy, who: Identity
) -> list[ProjectSummary]:
    """Every project ``who`` may read (one catalog query), as ``/simple/`` lists them."""
    return [p for p in catalog.list_projects() if policy.can_read(who, p.name)]


def paginate(items: list[ProjectSummary], page: int, per_page: int = PER_PAGE) -> Listing:
    pages = max(1, math.ceil(len(items) / per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    return Listing(
        projects=items[start : start + per_page],
        total=len(items),
        total_files=sum(p.file_count for p in items),
        page=page,
        pages=pages,
    )


def home(
    catalog: Catalog, policy: AccessPolicy, who: Identity, page: int = 1, per_page: int = PER_PAGE
) -> Listing:
    """Readable projects, most recently updated first."""
    projects = readable_projects(catalog, policy, who)
    projects.sort(key=lambda p: (-p.last_modified, p.name))
    return paginate(projects, page, per_page)


def search_rank(project: ProjectSummary, name_query: str, text_query: str) -> int | None:
    """0 exact name, 1 name prefix, 2 name substring, 3 summary match; None: no match.

    ``name_query`` is normalized (PEP 503), ``text_query`` case-folded.
    """
    if name_query:
        if project.name == name_query:
            return 0
        if project.name.startswith(name_query):
            return 1
        if name_query in project.name:
            return 2
    if text_query and text_query in (project.summary or "").casefold():
        return 3
    return None


def search(
    catalog: Catalog,
    policy: AccessPolicy,
    who: Identity,
    query: str,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Listing:
    """Readable projects whose normalized name contains the query (exact, then prefix,
    then substring matches) or whose summary contains it, best first."""
    text = " ".join(query.split())[:MAX_QUERY_LENGTH].casefold()
    name_query = normalize(text).strip("-") if text else ""
    if not text:
        return paginate([], page, per_page)
    ranked: list[tuple[int, str, ProjectSummary]] = []
    for project in readable_projects(catalog, policy, who):
        rank = search_rank(project, name_query, text)
        if rank is not None:
            ranked.append((rank, project.name, project))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return paginate([r[2] for r in ranked], page, per_page)


# --- project page -----------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: built hundreds of times per page, and faster so
class Release:
    version: str
    files: list[FileRecord]  # wheels first, then by filename
    upload_time: float  # of its first file
    yanked: bool  # every file yanked (PEP 592 yanks files; PyPI shows releases)
    yanked_reason: str | None
    prerelease: bool


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str  # as the metadata says
    href: str | None  # the URL if http(s), else None: shown as text, never as a link


@dataclass(frozen=True, slots=True)
class ReleaseMetadata:
    """The parts of a stored core metadata file the project page shows."""

    requires_dist: list[str] = field(default_factory=list)
    provides_extra: list[str] = field(default_factory=list)
    classifiers: list[str] = field(default_factory=list)
    urls: list[Link] = field(default_factory=list)
    author: str | None = None
    maintainer: str | None = None
    license: str | None = None
    keywords: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProjectView:
    name: str  # normalized
    display_name: str
    release: Release  # the one shown
    latest: Release
    releases: list[Release]  # newest version first
    metadata: ReleaseMetadata | None
    description_html: str | None
    may_write: bool = False  # the visitor may upload, yank and delete here

    @property
    def is_latest(self) -> bool:
        return self.release.version == self.latest.version

    @property
    def summary(self) -> str | None:
        return next((f.summary for f in self.release.files if f.summary), None)

    @property
    def requires_python(self) -> str | None:
        return next((f.requires_python for f in self.release.files if f.requires_python), None)


def _file_order(record: FileRecord) -> tuple:
    return (record.packagetype != "bdist_wheel", record.filename)


def group_releases(files: Iterable[FileRecord]) -> list[Release]:
    """Files grouped by version, newest version first (one pass: pages of projects with
    hundreds of releases call it on every view)."""
    by_version: dict[str, list[FileRecord]] = {}
    for record in files:
        members = by_version.get(record.version)
        if members is None:
            by_version[record.version] = [record]
        else:
            members.append(record)
    releases = []
    for version, members in by_version.items():
        if len(members) > 1:
            members.sort(key=_file_order)
        reasons = [f.yanked for f in members]
        yanked = None not in reasons
        releases.append(
            Release(
                version,
                members,
                min(f.upload_time for f in members),
                yanked,
                next((r for r in reasons if r), None) if yanked else None,
                is_prerelease(version),
            )
        )
    releases.sort(key=lambda r: version_key(r.version), reverse=True)
    return releases


def latest_release(releases: list[Release]) -> Release:
    """PyPI's choice: the newest final release not yanked, else the newest not yanked,
    else the newest. ``releases`` is newest first and not empty."""
    for wanted in (
        lambda r: not r.yanked and not r.prerelease,
        lambda r: not r.yanked,
    ):
        for release in releases:
            if wanted(release):
                return release
    return releases[0]


def find_release(releases: list[Release], version: str) -> Release | None:
    """The release spelled ``version``, or equal to it under PEP 440 normalization."""
    for release in releases:
        if release.version == version:
            return release
    wanted = version_key(version)
    return next((r for r in releases if version_key(r.version) == wanted), None)


def _link(label: str, url: str) -> Link:
    url = url.strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    return Link(label.strip() or url, url, url if scheme in ("http", "https") else None)


def _person(name: str | None, email: str | None) -> str | None:
    """The name, else the email field (often ``Name <address>`` already)."""
    return (name if name and name != "UNKNOWN" else None) or email or None


def parse_release_metadata(source: bytes) -> ReleaseMetadata:
    """What the page shows of a METADATA / PKG-INFO file (``packaging`` parses it)."""
    from packaging.metadata import parse_email

    raw, _unparsed = parse_email(source)
    urls = []
    if raw.get("home_page") and raw["home_page"] != "UNKNOWN":
        urls.append(_link("Homepage", raw["home_page"]))
    urls += [_link(label, url) for label, url in (raw.get("project_urls") or {}).items()]
    if raw.get("download_url") and raw["download_url"] != "UNKNOWN":
        urls.append(_link("Download", raw["download_url"]))
    license_text = raw.get("license_expression") or raw.get("license")
    if license_text and ("\n" in license_text.strip() or len(license_text) > 100):
        license_text = None  # a whole license file: the classifiers say it better
    if license_text == "UNKNOWN":
        license_text = None
    return ReleaseMetadata(
        requires_dist=list(raw.get("requires_dist") or []),
        provides_extra=list(raw.get("provides_extra") or []),
        classifiers=sorted(raw.get("classifiers") or []),
        urls=urls,
        author=_person(raw.get("author"), raw.get("author_email")),
        maintainer=_person(raw.get("maintainer"), raw.get("maintainer_email")),
        license=license_text,
        keywords=[k for k in (raw.get("keywords") or []) if k],
    )


def _read_metadata(storage: Storage, release: Release) -> ReleaseMetadata | None:
    for record in release.files:  # wheels first: their metadata is never dynamic
        if record.metadata_sha256:
            try:
                return parse_release_metadata(
                    storage.read(metadata_key(record.project, record.filename))
                )
            except NotFound:
                continue
    return None


def _read_description(storage: Storage, release: Release) -> str | None:
    for record in release.files[:MAX_DESCRIPTION_READS]:
        html = read_description(storage, record)
        if html is not None:
            return html
    return None


def project_view(
    catalog: Catalog,
    storage: Storage,
    policy: AccessPolicy,
    who: Identity,
    project: str,
    version: str | None = None,
) -> ProjectView:
    """The project page of a normalized name (the latest release, or ``version``).

    Raises ``NotFound`` alike for a project that does not exist, one ``who`` may not
    read, and a version it does not have.
    """
    may_read, may_write = policy.read_write(who, project)
    if not may_read:
        raise NotFound(f"No project named {project!r}.")
    files = catalog.list_files(project)
    if not files:
        raise NotFound(f"No project named {project!r}.")
    releases = group_releases(files)
    latest = latest_release(releases)
    release = latest if version is None else find_release(releases, version)
    if release is None:
        raise NotFound(f"Project {project!r} has no version {version!r}.")
    display_name = next(
        (f.display_name for f in release.files if f.display_name), files[0].display_name
    )
    return ProjectView(
        name=project,
        display_name=display_name or project,
        release=release,
        latest=latest,
        releases=releases,
        metadata=_read_metadata(storage, release),
        description_html=_read_description(storage, release),
        may_write=may_write,
    )
