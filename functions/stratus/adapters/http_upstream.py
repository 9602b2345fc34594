"""The UpstreamIndex port over HTTP(S), with urllib3.

Why urllib3: botocore depends on it, so it is already in every function (the layer pins
it with botocore, ``layers/requirements.txt``) and costs no package and no extra import time;
it streams responses, pools connections, and has separate connect and read timeouts.
httpx or requests would add packages (and imports on the cold path) for nothing needed here.
Only the API common to urllib3 1.26 and 2.x is used (`stratus serve` takes what it finds).

What the upstream sends is bounded: a page may take ``pypi.upstream_timeout`` to connect
and between bytes, twice that in all, and at most ``MAX_PAGE_BYTES``; small files (PEP 658
metadata) have their own cap. Redirects are followed (at most 3). Every URL, redirect
targets included, must be https or on the upstream's own scheme and host: a hostile page
or redirect cannot send a fill to an internal http endpoint (169.254.169.254, ...).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from ..domain.errors import NotFound, UpstreamError
from ..domain.upstream import (
    ACCEPT,
    MAX_PAGE_BYTES,
    NOT_MODIFIED,
    Revalidated,
    UpstreamPage,
    parse_page,
)

USER_AGENT = "stratus-index (upstream fallback)"
FILE_CHUNK = 1024 * 1024  # bytes per chunk when streaming a file
PAGE_CHUNK = 8192  # raw bytes per read of a (maybe gzip'd) page: bounds one decoded chunk
MAX_REDIRECTS = 3


class HttpUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        max_page_bytes: int = MAX_PAGE_BYTES,
        pool: Any = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_page_bytes = max_page_bytes
        base = urlsplit(self.base_url)
        self._home = (base.scheme, base.netloc)
        self._pool = pool
        self.requests = 0  # made so far (benchmarks count them)

    def __repr__(self) -> str:
        return f"HttpUpstream({self.base_url!r})"

    @property
    def pool(self) -> Any:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(
                num_pools=4,
                maxsize=8,
                cert_reqs="CERT_REQUIRED",
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                # one more connect attempt; redirects are followed (and checked) by _open
                retries=urllib3.Retry(
                    total=2, connect=1, read=0, status=0, redirect=0, raise_on_redirect=False
                ),
            )
        return self._pool

    # --- plumbing -----------------------------------------------------------------------

    def _open(self, url: str, headers: dict[str, str]) -> tuple[Any, str]:
        """GET ``url``; (the response, its URL) after at most MAX_REDIRECTS redirects, each
        target checked as the first (https, or the upstream's own scheme and host)."""
        import urllib3

        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(url)
            self.requests += 1
            try:
                response = self.pool.request(
                    "GET",
                    url,
                    headers={"User-Agent": USER_AGENT, **headers},
                    preload_content=False,
                    redirect=False,
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise UpstreamError(f"the upstream index does not answer ({url}): {exc}") from None
            location = response.headers.get("Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response, url
            response.close()
            url = urljoin(url, location)
        raise UpstreamError(f"the upstream redirects too often ({url})")

    def _read(self, response: Any, limit: int, deadline: float, url: str) -> bytes:
        import urllib3

        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.stream(PAGE_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise UpstreamError(f"the upstream sent more than {limit} bytes for {url}")
                if time.monotonic() > deadline:
                    raise UpstreamError(f"the upstream is too slow to send {url}")
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamError(f"reading {url} from the upstream failed: {exc}") from None
        return b"".join(chunks)

    @staticmethod
    @contextlib.contextmanager
    def _closing(response: Any) -> Iterator[Any]:
        """Return the connection to the pool after a page read whole (200) or a 304;
        drop it otherwise (an unread error body must not reach the next request)."""
        complete = False
        try:
            yield response
            complete = response.status in (200, 304)
        finally:
            if complete:
                response.release_conn()
            else:
                response.close()

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https" or (parts.scheme, parts.netloc) == self._home:
            return
        raise UpstreamError(f"refusing to fetch {url}: not https, and not on the upstream's host")

    # --- UpstreamIndex port -------------------------------------------------------------

    def project_page(self, project: str, etag: str | None = None) -> UpstreamPage | Revalidated:
        url = f"{self.base_url}/simple/{quote(project, safe='')}/"
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
        if etag:
            headers["If-None-Match"] = etag
        deadline = time.monotonic() + 2 * self.timeout
        response, final_url = self._open(url, headers)
        with self._closing(response):
            status = response.status
            if status == 304 and etag:
                return NOT_MODIFIED
            if status in (404, 410):
                return UpstreamPage(project, exists=False, checked_at=time.time())
            if status != 200:
                raise UpstreamError(f"the upstream answered {status} for {url}")
            body = self._read(response, self.max_page_bytes, deadline, url)
            try:
                files = parse_page(
                    body, response.headers.get("Content-Type", ""), final_url, project
                )
            except ValueError as exc:  # InvalidInput included
                raise UpstreamError(f"the upstream's page {url} is unusable: {exc}") from None
            return UpstreamPage(
                project, files, etag=response.headers.get("ETag"), checked_at=time.time()
            )

    @contextlib.contextmanager
    def open_file(self, url: str) -> Iterator[Iterator[bytes]]:
        response = self._get_file(url)
        try:
            yield self._chunks(response, url)
        finally:
            response.close()  # files are long: no reuse of a connection maybe left mid-body

    @staticmethod
    def _chunks(response: Any, url: str) -> Iterator[bytes]:
        import urllib3

        try:
            yield from response.stream(FILE_CHUNK)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamError(f"downloading {url} from the upstream failed: {exc}") from None

    def read_file(self, url: str, limit: int) -> bytes:
        with self._closing(self._get_file(url)) as response:
            return self._read(response, limit, time.monotonic() + 2 * self.timeout, url)

    def _get_file(self, url: str) -> Any:
        response, _ = self._open(url, {"Accept-Encoding": "identity"})
        if response.status != 200:
            response.close()
            if response.status in (404, 410):
                raise NotFound(f"the upstream has no file at {url}")
            raise UpstreamError(f"the upstream answered {response.status} for {url}")
        return response
