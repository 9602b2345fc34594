"""The web UI's data on real local adapters: descriptions stored at upload, listings,
search and project pages, and that nobody sees a project the simple API would hide."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from passlib.hash import sha256_crypt

from stratus.adapters.config_access import ConfigAccess
from stratus.adapters.local_storage import LocalStorage
from stratus.adapters.sqlite_catalog import SqliteCatalog
from stratus.app import browse
from stratus.app.policy import AccessPolicy
from stratus.app.publish import Publisher
from stratus.app.reconcile import reconcile
from stratus.domain.errors import NotFound
from stratus.domain.keys import description_key
from stratus.domain.models import ANONYMOUS, Identity
from stratus.settings import Settings
from tests.support.distributions import sdist_bytes, wheel_bytes

README = """# Demo

Some **bold** text.

<script>document.title = "pwned"</script>
"""
HEADERS = (
    "Description-Content-Type: text/markdown",
    "Classifier: Programming Language :: Python :: 3",
    "Classifier: License :: OSI Approved :: MIT License",
    "Project-URL: Source, https://git.example.com/demo",
    "Project-URL: Evil, javascript:alert(1)",
    "Author: Ada",
    "License-Expression: MIT",
    "Keywords: demo,test",
    "Provides-Extra: fast",
)
ALICE = Identity("alice", is_admin=True)
BOB = Identity("bob")
CAROL = Identity("carol", groups=frozenset({"secret-readers"}))


@dataclass
class World:
    catalog: SqliteCatalog
    storage: LocalStorage
    policy: AccessPolicy
    publisher: Publisher

    def upload(self, built: tuple[str, bytes], name: str, version: str) -> None:
        self.publisher.upload(
            name=name,
            version=version,
            filename=built[0],
            data=built[1],
            digests={},
            uploader="alice",
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    pw = sha256_crypt.using(rounds=1000).hash("pw")
    access = ConfigAccess.from_options(
        {
            "user.alice": pw,
            "user.bob": pw,
            "user.carol": pw,
            "group.secret-readers": "carol",
            "auth.admins": "alice",
            "package.hidden.group.secret-readers": "r",
        }
    )
    catalog = SqliteCatalog(tmp_path / "index.sqlite3")
    storage = LocalStorage(tmp_path / "files")
    policy = AccessPolicy(access, Settings(default_read=("authenticated",)))
    return World(catalog, storage, policy, Publisher(catalog, storage, allow_overwrite=False))


def test_upload_stores_the_rendered_description_and_delete_removes_it(world: World):
    built = wheel_bytes("demo", "1.0", headers=HEADERS, description=README)
    world.upload(built, "demo", "1.0")
    key = description_key("demo", built[0])
    html = world.storage.read(key).decode()
    assert "<strong>bold</strong>" in html and "<script" not in html
    assert world.storage.head(key).metadata == {}  # a sidecar, not a distribution
    report = reconcile(world.catalog, world.storage, dry_run=True)
    assert report.skipped == {} and report.repairs == 0  # the sidecar is not an orphan
    world.publisher.delete("demo", built[0])
    assert world.storage.head(key) is None


def test_old_sdists_get_their_description_too(world: World):
    built = sdist_bytes("old", "1.0", metadata_version="2.1", description="Plain *rst*.\n")
    world.upload(built, "old", "1.0")
    view = browse.project_view(world.catalog, world.storage, world.policy, BOB, "old")
    assert view.description_html is not None and "<em>rst</em>" in view.description_html
    assert view.metadata is None  # no servable core metadata (Metadata-Version < 2.2)


def test_project_view_shows_the_latest_release_with_its_metadata(world: World):
    world.upload(wheel_bytes("demo", "1.0", headers=HEADERS, description=README), "demo", "1.0")
    world.upload(
        wheel_bytes(
            "demo",
            "2.0",
            headers=HEADERS,
            description="# Two\n",
            requires_python=">=3.9",
            requires_dist=("httpx>=0.27", "uvloop; extra == 'fast'"),
        ),
        "demo",
        "2.0",
    )
    world.upload(wheel_bytes("demo", "3.0b1", headers=HEADERS), "demo", "3.0b1")
    world.upload(sdist_bytes("demo", "2.0", description="sdist readme"), "demo", "2.0")
    view = browse.project_view(world.catalog, world.storage, world.policy, BOB, "demo")
    assert view.release.version == "2.0" and view.is_latest  # prereleases are not latest
    assert [r.version for r in view.releases] == ["3.0b1", "2.0", "1.0"]
    assert [f.packagetype for f in view.release.files] == ["bdist_wheel", "sdist"]
    assert view.requires_python == ">=3.9"
    assert "Two" in (view.description_html or "")  # the wheel's description is preferred
    meta = view.metadata
    assert meta is not None
    assert meta.requires_dist == ["httpx>=0.27", "uvloop; extra == 'fast'"]
    assert meta.classifiers == [
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
    ]
    assert meta.license == "MIT" and meta.author == "Ada" and meta.keywords == ["demo", "test"]
    assert meta.provides_extra == ["fast"]
    assert [(u.label, u.href) for u in meta.urls] == [
        ("Source", "https://git.example.com/demo"),
        ("Evil", None),  # not http(s): never a link
    ]
    assert meta.urls[1].url == "javascript:alert(1)"

    older = browse.project_view(world.catalog, world.storage, world.policy, BOB, "demo", "1.0")
    assert older.release.version == "1.0" and not older.is_latest
    assert "<strong>bold</strong>" in (older.description_html or "")
    assert (
        browse.project_view(
            world.catalog, world.storage, world.policy, BOB, "demo", "2.0.0"
        ).release.version
        == "2.0"
    )  # PEP 440 equal spelling
    with pytest.raises(NotFound):
        browse.project_view(world.catalog, world.storage, world.policy, BOB, "demo", "9.9")


def test_yanked_releases_are_marked_and_not_latest(world: World):
    for version in ("1.0", "2.0"):
        world.upload(wheel_bytes("demo", version), "demo", version)
    world.publisher.yank("demo", "demo-2.0-py3-none-any.whl", "broken")
    view = browse.project_view(world.catalog, world.storage, world.policy, BOB, "demo")
    assert view.latest.version == "1.0"
    assert [(r.version, r.yanked, r.yanked_reason) for r in view.releases] == [
        ("2.0", True, "broken"),
        ("1.0", False, None),
    ]


def test_hidden_projects_stay_hidden_everywhere(world: World):
    world.upload(wheel_bytes("hidden", "1.0", summary="Top secret"), "hidden", "1.0")
    world.upload(wheel_bytes("public", "1.0", summary="Nothing secret here"), "public", "1.0")
    c, s, p = world.catalog, world.storage, world.policy
    for who, expected in (
        (BOB, ["public"]),
        (CAROL, ["hidden", "public"]),
        (ALICE, ["hidden", "public"]),
        (ANONYMOUS, []),
    ):
        assert sorted(x.name for x in browse.home(c, p, who).projects) == expected
        assert sorted(x.name for x in browse.search(c, p, who, "secret").projects) == expected
        for name in ("hidden", "public"):
            if name in expected:
                view = browse.project_view(c, s, p, who, name)
                assert view.name == name and view.may_write == (who is ALICE)
            else:
                with pytest.raises(NotFound):
                    browse.project_view(c, s, p, who, name)


def test_home_lists_newest_first_with_counts_and_pages(world: World):
    for i in range(5):
        world.upload(wheel_bytes(f"pkg{i}", "1.0"), f"pkg{i}", "1.0")
    world.upload(wheel_bytes("pkg0", "1.1"), "pkg0", "1.1")  # pkg0 updated last
    first = browse.home(world.catalog, world.policy, BOB, page=1, per_page=2)
    assert [p.name for p in first.projects] == ["pkg0", "pkg4"]
    assert (first.total, first.total_files, first.pages) == (5, 6, 3)
    last = browse.home(world.catalog, world.policy, BOB, page=99, per_page=2)
    assert last.page == 3 and [p.name for p in last.projects] == ["pkg1"]


def test_search_ranks_exact_prefix_substring_then_summary(world: World):
    for name, summary in (
        ("foo-bar", "the exact one"),
        ("foo-bar-extra", "a prefix match"),
        ("my-foo-bar", "a substring match"),
        ("unrelated", "mentions Foo-Bar in its summary"),
        ("nothing", "no match at all"),
    ):
        world.upload(wheel_bytes(name, "1.0", summary=summary), name, "1.0")
    found = browse.search(world.catalog, world.policy, BOB, "Foo_Bar")
    assert [p.name for p in found.projects] == ["foo-bar", "foo-bar-extra", "my-foo-bar"]
    found = browse.search(world.catalog, world.policy, BOB, "foo-bar")
    assert [p.name for p in found.projects][-1] == "unrelated"
    assert browse.search(world.catalog, world.policy, BOB, "   ").total == 0
    assert browse.search(world.catalog, world.policy, BOB, "SUMMARY").total == 1
