"""The fallback's use cases on real adapters (local: SQLite + files; AWS: DynamoDB Local +
moto S3) and a real upstream server: project views, cache fills stored like uploads,
origin controls, and /api/fetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.adapters.config_access import ConfigAccess
from stratus.app.fetch import choose, fetch_requirements, requirement_lines
from stratus.app.publish import Publisher
from stratus.app.upstream import FallbackServices
from stratus.domain.errors import Conflict, PermissionDenied, UpstreamError
from stratus.domain.fallback import Answer, DownloadAnswer, mirror_name
from stratus.domain.keys import file_key, metadata_key
from stratus.domain.models import Identity
from stratus.domain.objectmeta import from_object_metadata
from stratus.domain.origins import BLOCK, LOCKED_BY_FILL, LOCKED_BY_UPLOAD, OriginControls
from stratus.domain.upstream import FillJob, UpstreamFile
from stratus.settings import Settings
from stratus.wiring import Services, build_fallback
from tests.support.distributions import wheel_bytes
from tests.support.memory import heap_peak
from tests.support.upstream_server import UpstreamServer

ALICE = Identity("alice", frozenset())
ANON = Identity()


@pytest.fixture
def upstream(tmp_path: Path):
    with UpstreamServer.running(tmp_path / "upstream") as server:
        yield server


def make(kind: str, request, tmp_path: Path, upstream, **options: str) -> FallbackServices:
    settings = Settings.from_mapping(
        {"fallback": "cache", "fallback_base_url": upstream.url, **options}
    )
    access = ConfigAccess.from_options({})
    if kind == "local":
        from stratus.adapters.local_storage import LocalStorage
        from stratus.adapters.sqlite_catalog import SqliteCatalog
        from stratus.adapters.sqlite_origins import SqliteOrigins
        from stratus.adapters.sqlite_page_cache import SqlitePageCache

        services = Services(
            SqliteCatalog(tmp_path / "index.sqlite3"),
            LocalStorage(tmp_path / "files"),
            access,
            settings,
        )
        return build_fallback(
            services,
            page_cache=SqlitePageCache(tmp_path / "upstream.sqlite3", mirror="m"),
            origin_store=SqliteOrigins(tmp_path / "index.sqlite3"),
        )
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.dynamo_origins import DynamoOrigins
    from stratus.adapters.dynamo_page_cache import DynamoFillLocks, DynamoPageCache
    from stratus.adapters.s3_storage import S3Storage

    table = request.getfixturevalue("dynamo_table")
    services = Services(
        DynamoCatalog(table), S3Storage(request.getfixturevalue("s3_bucket")), access, settings
    )
    return build_fallback(
        services,
        page_cache=DynamoPageCache(table, mirror="m"),
        origin_store=DynamoOrigins(table),
        locks=DynamoFillLocks(table),
    )


@pytest.fixture(params=["local", "aws"])
def fb(request, tmp_path: Path, upstream) -> FallbackServices:
    return make(request.param, request, tmp_path, upstream)


def job_for(fb: FallbackServices, project: str, filename: str) -> FillJob:
    assert fb.pages is not None
    file = fb.pages.get(project).file(filename)
    assert file is not None
    return FillJob.for_file(project, file, "alice")


def upload(fb: FallbackServices, name: str, version: str) -> None:
    filename, data = wheel_bytes(name, version, module_body="BUILT_HERE = True\n")
    publisher = Publisher(
        fb.fallback.catalog,
        fb.filler.publisher.storage,  # type: ignore[union-attr]
        allow_overwrite=False,
        guard=fb.origins.check_publish,
    )
    publisher.upload(
        name=name, version=version, filename=filename, data=data, digests={}, uploader="alice"
    )


# --- views ------------------------------------------------------------------------------------


def test_upstream_only_project_lists_upstream_files_through_the_index(fb, upstream) -> None:
    upstream.add_wheel("demo", "1.0", requires_python=">=3.9")
    view = fb.fallback.view(ALICE, "demo", may_read=True, path="/simple/demo/")
    assert view.answer is Answer.PAGE_UPSTREAM_CACHED and view.via_index
    assert [f.filename for f in view.upstream] == ["demo-1.0-py3-none-any.whl"]
    assert view.upstream[0].requires_python == ">=3.9" and view.files == []
    anon = fb.fallback.view(ANON, "demo", may_read=True, path="/simple/demo/")
    assert anon.answer is Answer.LOGIN  # cache mode: anonymous has no cache_update


def test_redirect_mode_points_at_the_base_url_plus_path(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream, fallback="redirect")
    view = fb.fallback.view(ANON, "demo", may_read=False, path="/pypi/demo/json")
    assert view.answer is Answer.REDIRECT
    assert view.redirect == f"{upstream.url}/pypi/demo/json"


def test_local_file_wins_a_filename_clash(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream, always_show_upstream="true")
    upstream.add_wheel("demo", "1.0")
    upstream.add_wheel("demo", "2.0")
    upload(fb, "demo", "1.0")  # other bytes than the upstream's 1.0
    view = fb.fallback.view(ALICE, "demo", may_read=True, path="/simple/demo/")
    assert view.answer is Answer.PAGE_UPSTREAM_CACHED
    assert [f.filename for f in view.files] == ["demo-1.0-py3-none-any.whl"]
    assert [f.filename for f in view.upstream] == ["demo-2.0-py3-none-any.whl"]


def test_stored_project_survives_the_upstream_going_down(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream, always_show_upstream="true")
    upload(fb, "demo", "1.0")
    upstream.down = True
    view = fb.fallback.view(ALICE, "demo", may_read=True, path="/simple/demo/")
    assert view.upstream_failed and [f.filename for f in view.files] == [
        "demo-1.0-py3-none-any.whl"
    ]
    with pytest.raises(UpstreamError):  # nothing here, nothing cached: 502
        fb.fallback.view(ALICE, "other", may_read=True, path="/simple/other/")


def test_private_projects_never_fall_back(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream, private_projects="acme-*")
    upstream.add_wheel("acme-tools", "9.9")  # a dependency-confusion attempt
    view = fb.fallback.view(ALICE, "acme-tools", may_read=True, path="/simple/acme-tools/")
    assert view.answer is Answer.NOT_FOUND and view.upstream == []
    missing = fb.fallback.missing_file(
        ALICE, "acme-tools", "acme_tools-9.9-py3-none-any.whl", may_read=True
    )
    assert missing.answer is DownloadAnswer.NOT_FOUND
    assert upstream.count("/simple/acme-tools/") == 0


def test_missing_file_decisions(fb, upstream) -> None:
    upstream.add_wheel("demo", "1.0")
    name = "demo-1.0-py3-none-any.whl"
    assert fb.fallback.missing_file(ANON, "demo", name, may_read=True).answer is (
        DownloadAnswer.LOGIN
    )
    found = fb.fallback.missing_file(ALICE, "demo", name, may_read=True)
    assert found.answer is DownloadAnswer.FILL and found.file is not None
    absent = fb.fallback.missing_file(ALICE, "demo", "demo-3.0.tar.gz", may_read=True)
    assert absent.answer is DownloadAnswer.NOT_FOUND
    meta = fb.fallback.upstream_metadata(found.file)
    assert meta.startswith(b"Metadata-Version")


# --- fills ------------------------------------------------------------------------------------


def test_fill_stores_like_an_upload(fb, upstream) -> None:
    hosted = upstream.add_wheel("Demo", "1.0", requires_python=">=3.8")
    record = fb.filler.fill(job_for(fb, "demo", hosted.filename))  # type: ignore[union-attr]
    uploader = "upstream:" + mirror_name(upstream.url)
    assert record.sha256 == hosted.sha256 and record.uploader == uploader
    assert record.requires_python == ">=3.8" and record.metadata_sha256
    catalog, storage = fb.fallback.catalog, fb.filler.publisher.storage  # type: ignore[union-attr]
    assert catalog.get_file("demo", hosted.filename) == record
    assert storage.read(file_key("demo", hosted.filename)) == hosted.path.read_bytes()
    assert storage.read(metadata_key("demo", hosted.filename)).startswith(b"Metadata-Version")
    info = storage.head(file_key("demo", hosted.filename))
    rebuilt = from_object_metadata(hosted.filename, info.size, info.metadata)  # type: ignore[union-attr]
    assert rebuilt is not None and rebuilt.uploader == uploader  # reconcile keeps it
    # From now on the project counts as stored.
    view = fb.fallback.view(ALICE, "demo", may_read=True, path="/simple/demo/")
    assert view.answer is Answer.PAGE and [f.filename for f in view.files] == [hosted.filename]
    # Idempotent: a second fill (a queue redelivery) fetches nothing.
    before = upstream.count("/files/")
    assert fb.filler.fill(job_for(fb, "demo", hosted.filename)) == record  # type: ignore[union-attr]
    assert upstream.count("/files/") == before


def test_a_file_that_fails_its_sha256_is_not_stored(fb, upstream) -> None:
    hosted = upstream.add_wheel("demo", "1.0")
    job = job_for(fb, "demo", hosted.filename)
    upstream.corrupt("demo", hosted.filename)
    with pytest.raises(UpstreamError, match="sha256"):
        fb.filler.fill(job)  # type: ignore[union-attr]
    assert fb.fallback.catalog.get_file("demo", hosted.filename) is None
    assert fb.filler.publisher.storage.head(file_key("demo", hosted.filename)) is None  # type: ignore[union-attr]


def test_stream_hands_out_the_bytes_while_storing(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream)
    hosted = upstream.add_wheel("demo", "1.0")
    job = job_for(fb, "demo", hosted.filename)
    stored: list = []
    assert b"".join(fb.filler.stream(job, stored)) == hosted.path.read_bytes()  # type: ignore[union-attr]
    assert stored and fb.fallback.catalog.get_file("demo", hosted.filename) is not None


def test_a_client_that_goes_away_stores_nothing(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream)
    hosted = upstream.add_huge_wheel("demo", "1.0", 3 * 1024 * 1024)
    chunks = fb.filler.stream(job_for(fb, "demo", hosted.filename))  # type: ignore[union-attr]
    next(chunks)
    chunks.close()
    assert fb.fallback.catalog.get_file("demo", hosted.filename) is None
    assert not list(Path(fb.filler.temp_dir or "/tmp").glob("stratus-fill-*"))  # type: ignore[union-attr]


def test_a_local_file_of_the_name_wins_over_the_upstream(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream)
    upstream.add_wheel("demo", "1.0")
    job = job_for(fb, "demo", "demo-1.0-py3-none-any.whl")
    upload(fb, "demo", "1.0")  # other bytes
    with pytest.raises(Conflict):
        fb.filler.fill(job)  # type: ignore[union-attr]


def test_fill_memory_stays_bounded(tmp_path, upstream, request) -> None:
    """A 48 MB wheel through the fill: Python allocations never approach its size."""
    fb = make("local", request, tmp_path, upstream)
    hosted = upstream.add_huge_wheel("bigpkg", "1.0", 48 * 1024 * 1024)
    job = job_for(fb, "bigpkg", hosted.filename)
    _, peak = heap_peak(lambda: fb.filler.fill(job))  # type: ignore[union-attr]
    assert fb.fallback.catalog.get_file("bigpkg", hosted.filename) is not None
    assert peak < 12 * 1024 * 1024, peak


# --- origin controls --------------------------------------------------------------------------


def test_origin_lock_first_upload_blocks_the_upstream(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream, origin_lock="true")
    upstream.add_wheel("mine", "5.0")
    upload(fb, "mine", "1.0")
    assert fb.origins.controls("mine") == LOCKED_BY_UPLOAD
    with pytest.raises(PermissionDenied, match="origin controls"):
        fb.filler.fill(job_for(fb, "mine", "mine-5.0-py3-none-any.whl"))  # type: ignore[union-attr]
    view = fb.fallback.view(ALICE, "mine", may_read=True, path="/simple/mine/")
    assert view.answer is Answer.PAGE and view.upstream == []


def test_origin_lock_first_fill_blocks_publishing(fb, upstream) -> None:
    fb.origins.origin_lock = True
    upstream.add_wheel("theirs", "1.0")
    fb.filler.fill(job_for(fb, "theirs", "theirs-1.0-py3-none-any.whl"))  # type: ignore[union-attr]
    assert fb.origins.controls("theirs") == LOCKED_BY_FILL
    with pytest.raises(PermissionDenied, match="PUT /admin/package/theirs/origin/"):
        upload(fb, "theirs", "2.0")
    assert fb.fallback.catalog.get_file("theirs", "theirs-2.0-py3-none-any.whl") is None
    fb.origins.set_controls("theirs", OriginControls())  # an admin unlocks
    upload(fb, "theirs", "2.0")


def test_without_origin_lock_nothing_is_claimed(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream)
    upstream.add_wheel("both", "1.0")
    upload(fb, "both", "0.1")
    fb.filler.fill(job_for(fb, "both", "both-1.0-py3-none-any.whl"))  # type: ignore[union-attr]
    upload(fb, "both", "0.2")
    assert fb.origins.controls("both") is None


def test_lock_of_projects_stored_before_the_lock_comes_from_their_files(
    tmp_path, upstream, request
) -> None:
    fb = make("local", request, tmp_path, upstream)
    upstream.add_wheel("cached", "1.0")
    upload(fb, "local-lib", "1.0")
    fb.filler.fill(job_for(fb, "cached", "cached-1.0-py3-none-any.whl"))  # type: ignore[union-attr]
    fb.origins.origin_lock = True
    with pytest.raises(PermissionDenied):
        upload(fb, "cached", "2.0")
    upload(fb, "local-lib", "2.0")
    assert fb.origins.controls("local-lib") == LOCKED_BY_UPLOAD


def test_admin_block_of_the_upstream(tmp_path, upstream, request) -> None:
    fb = make("local", request, tmp_path, upstream)
    upstream.add_wheel("demo", "1.0")
    fb.origins.set_controls("demo", OriginControls(upstream=BLOCK))
    view = fb.fallback.view(ALICE, "demo", may_read=True, path="/simple/demo/")
    assert view.answer is Answer.NOT_FOUND


# --- /api/fetch -------------------------------------------------------------------------------


def test_requirement_lines() -> None:
    text = "# pinned\nrequests>=2 # web\n\nfoo \\\n  ==1.0\n-r other.txt\n"
    assert requirement_lines(text) == ["requests>=2", "foo ==1.0", "-r other.txt"]


def _file(version: str, kind: str = "py3-none-any.whl", **kw) -> UpstreamFile:
    name = f"demo-{version}-{kind}" if kind.endswith("whl") else f"demo-{version}.tar.gz"
    return UpstreamFile(name, f"https://x/{name}", version, sha256="a" * 64, **kw)


def test_choose_best_match() -> None:
    from packaging.requirements import Requirement

    files = (
        _file("1.0"),
        _file("1.0", "sdist"),
        _file("1.5", yanked="bad"),
        _file("1.4"),
        _file("1.4", "sdist"),
        _file("2.0b1"),
        _file("1.4", "cp312-cp312-manylinux_2_28_x86_64.whl"),
    )
    pick = lambda spec, **kw: [f.filename for f in choose(Requirement(spec), files, **kw)]  # noqa: E731
    assert pick("demo", wheel=True, prerelease=False) == ["demo-1.4-py3-none-any.whl"]
    assert pick("demo", wheel=False, prerelease=False) == ["demo-1.4.tar.gz"]
    assert pick("demo", wheel=True, prerelease=True) == ["demo-2.0b1-py3-none-any.whl"]
    assert pick("demo>=2.0b1", wheel=True, prerelease=False) == ["demo-2.0b1-py3-none-any.whl"]
    assert pick("demo<1.2", wheel=True, prerelease=False) == ["demo-1.0-py3-none-any.whl"]
    assert pick("demo==1.5", wheel=True, prerelease=False) == ["demo-1.5-py3-none-any.whl"]
    assert pick("demo>3", wheel=True, prerelease=False) == []


def test_choose_takes_at_most_max_files_per_requirement() -> None:
    """A version with more platform wheels than the bound (no pure wheel): the first
    ``MAX_FILES_PER_REQUIREMENT`` are fetched, the rest left; an sdist is one file."""
    from packaging.requirements import Requirement

    from stratus.app.fetch import MAX_FILES_PER_REQUIREMENT

    tags = [f"cp312-cp312-manylinux_2_{n}_x86_64.whl" for n in range(17, 117)]
    files = (*(_file("3.0", tag) for tag in tags), _file("3.0", "sdist"))
    assert len(tags) > MAX_FILES_PER_REQUIREMENT == 64
    wheels = choose(Requirement("demo"), files, wheel=True, prerelease=False)
    assert [f.filename for f in wheels] == [f"demo-3.0-{t}" for t in tags[:64]]
    sdist = choose(Requirement("demo"), files, wheel=False, prerelease=False)
    assert [f.filename for f in sdist] == ["demo-3.0.tar.gz"]


def test_fetch_requirements(fb, upstream) -> None:
    upstream.add_wheel("alpha", "1.0")
    upstream.add_wheel("alpha", "1.1")
    upstream.add_sdist("beta", "0.5")
    report = fetch_requirements(
        "alpha<1.1\nbeta\ngamma\nalpha[x] @ https://x/a.whl\nwin ; sys_platform == 'win32'\n"
        "-e .\nnot a requirement!!\n",
        ALICE,
        pages=fb.pages,  # type: ignore[arg-type]
        filler=fb.filler,  # type: ignore[arg-type]
        may_read=lambda p: True,
    )
    assert [(f["filename"], f["status"]) for f in report.fetched] == [
        ("alpha-1.0-py3-none-any.whl", "fetched"),
        ("beta-0.5.tar.gz", "fetched"),
    ]
    reasons = {f["requirement"]: f["reason"] for f in report.failed}
    assert "no file of gamma" in reasons["gamma"]
    assert "direct references" in reasons["alpha[x] @ https://x/a.whl"]
    assert "marker" in reasons["win ; sys_platform == 'win32'"]
    assert "options" in reasons["-e ."]
    assert "not a valid requirement" in reasons["not a requirement!!"]
    assert fb.fallback.catalog.get_file("beta", "beta-0.5.tar.gz") is not None
    again = fetch_requirements(
        "alpha<1.1",
        ALICE,
        pages=fb.pages,
        filler=fb.filler,
        may_read=lambda p: p != "x",  # type: ignore[arg-type]
    )
    assert again.fetched[0]["status"] == "stored"
    denied = fetch_requirements(
        "alpha",
        ALICE,
        pages=fb.pages,
        filler=fb.filler,
        may_read=lambda p: False,  # type: ignore[arg-type]
    )
    assert denied.fetched == [] and "may not read" in denied.failed[0]["reason"]
