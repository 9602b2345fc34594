"""The upstream fallback: pypicloud's decision (``domain.fallback``) applied to a request,
and the upstream's pages, cached for every process in the catalog's store.

``UpstreamPages``: a page is served from the PageCache while younger than
``pypi.upstream_cache_seconds``; then revalidated with ``If-None-Match``. When the upstream
is down or slow (``pypi.upstream_timeout``) the last good page is served and the fault
logged, as devpi's cache does; without one the request fails with ``UpstreamError`` (502).

``Fallback``: what ``/simple/<p>/``, ``/pypi/<p>/json`` and downloads of files that are not
stored answer. Names that are private or whose origin controls block the upstream are
decided as with ``fallback = none``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..domain import fallback, names
from ..domain.errors import NotFound, UpstreamError
from ..domain.fallback import Answer, DownloadAnswer, Mode
from ..domain.models import FileRecord, Identity
from ..domain.upstream import MAX_METADATA_BYTES, NOT_MODIFIED, UpstreamFile, UpstreamPage
from ..ports import Catalog, MetricsSink, PageCache, UpstreamIndex
from ..settings import Settings
from .fill import Filler
from .origins import OriginPolicy

log = logging.getLogger(__name__)


class UpstreamPages:
    def __init__(
        self,
        upstream: UpstreamIndex,
        cache: PageCache,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.upstream = upstream
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.metrics = metrics  # counts UpstreamErrors

    def get(self, project: str) -> UpstreamPage:
        """The upstream's page (``exists`` False: the upstream has no such project)."""
        if not names.is_valid(project):  # no index holds it: neither asked nor cached
            return UpstreamPage(project, exists=False, checked_at=self.clock())
        cached = self.cache.get(project)
        now = self.clock()
        if cached is not None and now - cached.checked_at < self.ttl_seconds:
            return cached
        try:
            fetched = self.upstream.project_page(project, cached.etag if cached else None)
        except UpstreamError as exc:
            if self.metrics is not None:
                self.metrics.count("UpstreamErrors")
            if cached is None:
                log.error("upstream unavailable, nothing cached for %s: %s", project, exc)
                raise
            log.warning(
                "upstream unavailable, serving the page of %s cached %.0f s ago: %s",
                project,
                now - cached.checked_at,
                exc,
            )
            return cached
        if fetched is NOT_MODIFIED:
            assert cached is not None
            self.cache.mark_checked(project, now)
            return cached.checked(now)
        assert isinstance(fetched, UpstreamPage)
        fetched = fetched.checked(now)
        self.cache.put(fetched)
        return fetched


@dataclass
class ProjectView:
    """What a project page request gets (``answer``) and, for pages, what it lists."""

    answer: Answer
    files: list[FileRecord] = field(default_factory=list)  # stored here
    upstream: list[UpstreamFile] = field(default_factory=list)  # upstream only (no clash)
    via_index: bool = False  # upstream files link through this index (fill the cache)
    redirect: str | None = None  # where a REDIRECT answer points
    upstream_failed: bool = False  # upstream part left out: down and nothing cached


@dataclass
class MissingFile:
    """What a download of a file that is not stored gets; ``file`` set when FILL."""

    answer: DownloadAnswer
    file: UpstreamFile | None = None


class Fallback:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        origins: OriginPolicy,
        pages: UpstreamPages | None,
    ) -> None:
        self.mode = fallback.parse_mode(settings.fallback)
        self.always_show_upstream = settings.always_show_upstream
        self.base_url = settings.fallback_base_url
        self.cache_update = settings.cache_update
        self.catalog = catalog
        self.origins = origins
        self.pages = pages if self.mode is not Mode.NONE else None

    def _mode_for(self, project: str) -> Mode:
        if self.pages is None:  # fallback = none (see __init__), or no upstream
            return Mode.NONE
        return fallback.effective_mode(self.mode, self.origins.upstream_allowed(project))

    def may_update_cache(self, who: Identity) -> bool:
        return fallback.may_update_cache(who, self.cache_update)

    def view(self, who: Identity, project: str, *, may_read: bool, path: str) -> ProjectView:
        """The answer to ``GET path`` (``/simple/<project>/`` or ``/pypi/<project>/json``)."""
        files = self.catalog.list_files(project)
        mode = self._mode_for(project)
        answer = fallback.decide(
            mode,
            self.always_show_upstream,
            stored=bool(files),
            may_read=may_read,
            may_update_cache=self.may_update_cache(who),
            logged_in=who.authenticated,
        )
        if answer is Answer.REDIRECT:
            return ProjectView(answer, redirect=fallback.redirect_url(self.base_url, path))
        if not fallback.shows_upstream(answer):
            return ProjectView(answer, files=files if answer is Answer.PAGE else [])
        assert self.pages is not None
        via_index = answer is Answer.PAGE_UPSTREAM_CACHED
        try:
            page = self.pages.get(project)
        except UpstreamError:
            if not files:
                raise
            return ProjectView(answer, files=files, via_index=via_index, upstream_failed=True)
        if not page.exists and not files:
            return ProjectView(Answer.NOT_FOUND)
        stored = {f.filename for f in files}
        extra = [f for f in page.files if f.filename not in stored]  # the local file wins
        return ProjectView(answer, files=files, upstream=extra, via_index=via_index)

    def missing_file(
        self, who: Identity, project: str, filename: str, *, may_read: bool
    ) -> MissingFile:
        """A download (or ``.metadata``) of ``filename`` that is not stored here."""
        answer = fallback.decide_download(
            self._mode_for(project),
            may_read=may_read,
            may_update_cache=self.may_update_cache(who),
            logged_in=who.authenticated,
        )
        if answer is not DownloadAnswer.FILL:
            return MissingFile(answer)
        assert self.pages is not None
        page = self.pages.get(project)
        found = page.file(filename)
        if found is None:
            return MissingFile(DownloadAnswer.NOT_FOUND)
        return MissingFile(answer, found)

    def upstream_metadata(self, file: UpstreamFile) -> bytes:
        """The PEP 658 metadata of an upstream file, checked against its announced hash."""
        if not file.has_metadata:
            raise NotFound(f"The upstream has no metadata file for {file.filename}.")
        assert self.pages is not None
        data = self.pages.upstream.read_file(file.metadata_url, MAX_METADATA_BYTES)
        expected = file.metadata_sha256
        if expected is not None and not hmac.compare_digest(
            hashlib.sha256(data).hexdigest(), expected
        ):
            raise UpstreamError(f"the upstream's metadata of {file.filename} fails its hash")
        return data


@dataclass
class FallbackServices:
    """The fallback's pieces, built once per process by ``wiring``."""

    fallback: Fallback
    origins: OriginPolicy
    pages: UpstreamPages | None = None  # None with fallback = none
    filler: Filler | None = None  # None with fallback = none
