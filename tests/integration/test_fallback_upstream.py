"""The upstream side of the fallback: the HTTP adapter against real servers (a PEP 691
JSON upstream and pypiserver, which speaks only HTML), and the shared page cache
(fresh, revalidated with ETags, stale when the upstream is down or slow)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stratus.adapters.http_upstream import HttpUpstream
from stratus.adapters.sqlite_page_cache import SqlitePageCache
from stratus.app.upstream import UpstreamPages
from stratus.domain.errors import NotFound, UpstreamError
from stratus.domain.upstream import NOT_MODIFIED, UpstreamPage
from tests.support.distributions import wheel_bytes, write
from tests.support.pypiserver import running_pypiserver
from tests.support.upstream_server import UpstreamServer


@pytest.fixture
def upstream(tmp_path: Path):
    with UpstreamServer.running(tmp_path / "upstream") as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- the adapter ------------------------------------------------------------------------------


def test_json_page_keeps_hashes_requires_python_yanks_and_metadata(upstream) -> None:
    a = upstream.add_wheel("Demo_Pkg", "1.0", requires_python=">=3.9")
    b = upstream.add_wheel("Demo_Pkg", "1.1", yanked="broken", with_metadata=False)
    page = HttpUpstream(upstream.url, timeout=5).project_page("demo-pkg")
    assert isinstance(page, UpstreamPage) and page.exists
    one, two = page.files
    assert (one.filename, one.version, one.sha256) == (a.filename, "1.0", a.sha256)
    assert one.url == f"{upstream.url}/files/{a.filename}"
    assert one.requires_python == ">=3.9" and one.yanked is None
    assert one.has_metadata and one.metadata_sha256 is not None and one.size == a.size
    assert (two.sha256, two.yanked, two.has_metadata) == (b.sha256, "broken", False)
    assert page.etag


def test_html_only_upstream_is_read_too(upstream) -> None:
    upstream.html_only = True
    upstream.add_wheel("demo", "1.0", requires_python=">=3.8", yanked="")
    (f,) = HttpUpstream(upstream.url, timeout=5).project_page("demo").files  # type: ignore[union-attr]
    assert (f.requires_python, f.yanked, f.has_metadata) == (">=3.8", "", True)
    assert f.metadata_sha256 is not None and f.sha256 is not None


def test_pypiserver_a_real_pep503_server(tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    wheel = write(packages, wheel_bytes("Other.Lib", "2.0"))
    with running_pypiserver(packages) as url:
        client = HttpUpstream(url, timeout=5)
        page = client.project_page("other-lib")
        assert isinstance(page, UpstreamPage)
        (f,) = page.files
        assert f.filename == wheel.name and f.url == f"{url}/packages/{wheel.name}"
        import hashlib

        assert f.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
        with client.open_file(f.url) as chunks:
            assert b"".join(chunks) == wheel.read_bytes()
        missing = client.project_page("no-such-project")
        assert isinstance(missing, UpstreamPage) and not missing.exists


def test_etag_revalidation_and_missing_projects(upstream) -> None:
    upstream.add_wheel("demo", "1.0")
    client = HttpUpstream(upstream.url, timeout=5)
    page = client.project_page("demo")
    assert isinstance(page, UpstreamPage)
    assert client.project_page("demo", page.etag) is NOT_MODIFIED
    upstream.add_wheel("demo", "1.1")
    changed = client.project_page("demo", page.etag)
    assert isinstance(changed, UpstreamPage) and len(changed.files) == 2
    # an unread 404 body must not spoil the kept-alive connection for the next request
    for _ in range(3):
        assert not client.project_page("nothing-here").exists  # type: ignore[union-attr]
        assert client.project_page("demo").exists  # type: ignore[union-attr]


def test_down_slow_and_oversized_upstreams_are_errors(upstream) -> None:
    upstream.add_wheel("demo", "1.0")
    upstream.down = True
    with pytest.raises(UpstreamError, match="does not answer"):
        HttpUpstream(upstream.url, timeout=2).project_page("demo")
    upstream.down = False
    upstream.delay = 2.0
    with pytest.raises(UpstreamError):
        HttpUpstream(upstream.url, timeout=1).project_page("demo")
    upstream.delay = 0
    with pytest.raises(UpstreamError, match="more than"):
        HttpUpstream(upstream.url, timeout=5, max_page_bytes=100).project_page("demo")
    metadata_service = "http://169.254.169.254/latest/meta-data"  # not https, not upstream's
    with (
        pytest.raises(UpstreamError, match="refusing"),
        HttpUpstream(upstream.url).open_file(metadata_service),
    ):
        pass
    with (
        pytest.raises(NotFound),
        HttpUpstream(upstream.url).open_file(f"{upstream.url}/files/x.whl"),
    ):
        pass


def test_redirects_are_followed_and_checked(upstream) -> None:
    hosted = upstream.add_wheel("demo", "1.0")
    upstream.redirects["/simple/demo/"] = "/moved/simple/demo/"
    upstream.redirects["/moved/simple/demo/"] = f"{upstream.url}/simple/demo-real/"
    upstream.add_wheel("demo-real", "1.0")
    client = HttpUpstream(upstream.url, timeout=5)
    page = client.project_page("demo")  # two hops, then the page; links resolve from it
    assert isinstance(page, UpstreamPage) and page.files == ()  # demo-real's files: not demo's
    upstream.redirects["/files/" + hosted.filename] = "http://169.254.169.254/latest/"
    with (
        pytest.raises(UpstreamError, match="refusing"),
        client.open_file(f"{upstream.url}/files/{hosted.filename}"),
    ):
        pass
    for i in range(5):
        upstream.redirects[f"/loop{i}"] = f"/loop{i + 1}"
    with pytest.raises(UpstreamError, match="redirects too often"):
        client.read_file(f"{upstream.url}/loop0", 100)


def test_a_botocore_sized_page(upstream) -> None:
    upstream.add_big_page("botocore", 10_000)
    page = HttpUpstream(upstream.url, timeout=10).project_page("botocore")
    assert isinstance(page, UpstreamPage) and len(page.files) == 10_000
    assert all(f.sha256 and f.requires_python == ">=3.8" for f in page.files)


# --- the page cache ---------------------------------------------------------------------------


class Counts(dict):
    """A MetricsSink that keeps the counts."""

    def count(self, name: str, value: int = 1) -> None:
        self[name] = self.get(name, 0) + value


def pages_over(
    upstream, tmp_path: Path, *, timeout: float = 5, metrics: Counts | None = None
) -> tuple[UpstreamPages, Clock]:
    clock = Clock()
    cache = SqlitePageCache(tmp_path / "upstream.sqlite3", mirror="test")
    return (
        UpstreamPages(
            HttpUpstream(upstream.url, timeout=timeout),
            cache,
            ttl_seconds=600,
            clock=clock,
            metrics=metrics,
        ),
        clock,
    )


def test_fresh_pages_come_from_the_cache(upstream, tmp_path: Path) -> None:
    upstream.add_wheel("demo", "1.0")
    pages, clock = pages_over(upstream, tmp_path)
    first = pages.get("demo")
    clock.now += 599
    assert pages.get("demo") == first
    assert upstream.count("/simple/demo/") == 1


def test_stale_pages_are_revalidated_with_their_etag(upstream, tmp_path: Path) -> None:
    upstream.add_wheel("demo", "1.0")
    pages, clock = pages_over(upstream, tmp_path)
    pages.get("demo")
    clock.now += 601
    again = pages.get("demo")  # 304: kept, checked_at moves
    assert again.checked_at == clock.now and len(again.files) == 1
    clock.now += 599
    pages.get("demo")
    assert upstream.count("/simple/demo/") == 2
    upstream.add_wheel("demo", "2.0")
    clock.now += 601
    assert len(pages.get("demo").files) == 2


@pytest.mark.parametrize("fault", ["down", "slow"])
def test_last_good_page_is_served_when_the_upstream_fails(
    upstream, tmp_path: Path, caplog, fault: str
) -> None:
    upstream.add_wheel("demo", "1.0")
    counts = Counts()
    pages, clock = pages_over(upstream, tmp_path, timeout=1, metrics=counts)
    good = pages.get("demo")
    assert counts == {}
    if fault == "down":
        upstream.down = True
    else:
        upstream.delay = 2.5
    clock.now += 3600
    with caplog.at_level(logging.WARNING, logger="stratus.app.upstream"):
        assert pages.get("demo").files == good.files
    assert "upstream unavailable, serving the page of demo" in caplog.text
    with pytest.raises(UpstreamError):  # nothing cached: nothing to serve
        pages.get("never-seen")
    assert counts == {"UpstreamErrors": 2}  # the business metric, once per failure


def test_missing_projects_are_cached_too(upstream, tmp_path: Path) -> None:
    pages, _ = pages_over(upstream, tmp_path)
    assert not pages.get("nothing").exists
    assert not pages.get("nothing").exists
    assert upstream.count("/simple/nothing/") == 1


@pytest.mark.parametrize("name", ["a?b", "x" * 3000, "-bad-", "été"])
def test_a_name_no_index_can_hold_is_never_asked_for(upstream, tmp_path: Path, name) -> None:
    pages, _ = pages_over(upstream, tmp_path)
    page = pages.get(name)
    assert not page.exists and not page.files
    assert sum(upstream.requests.values()) == 0
