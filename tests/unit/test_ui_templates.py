"""Every template renders with the context its page gives it, and escapes what it shows."""

from __future__ import annotations

from typing import Any

import pytest

from stratus.app.browse import (
    Link,
    ProjectView,
    ReleaseMetadata,
    group_releases,
    latest_release,
    paginate,
)
from stratus.domain.models import ANONYMOUS, FileRecord, Identity, ProjectSummary
from stratus.domain.permissions import PackageAcl
from stratus.ports import TokenRecord, UserInfo
from stratus.web.ui.templating import environment, format_date, load_static

EVIL = '<script>alert("x")</script>'
ENV = environment()


def render(name: str, who: Identity = ANONYMOUS, **context: Any) -> str:
    base = {
        "site_title": "Corp <Index>",
        "who": who,
        "csrf": "tok-123",
        "url": lambda path: "/stage" + path,
        "static": lambda name: f"/stage/static/{name}?v=1",
        "query": "",
        "active": "",
        "messages": [],
        "index_url": "https://pypi.example.com/simple/",
        "upload_url": "https://pypi.example.com/",
    }
    return ENV.get_template(name).render(**{**base, **context})


def record(version: str, **changes: Any) -> FileRecord:
    return FileRecord(
        project="demo",
        filename=f"demo-{version}-py3-none-any.whl",
        version=version,
        sha256="ab" * 32,
        size=2048,
        upload_time=1_700_000_000.0,
        display_name="Demo",
        packagetype="bdist_wheel",
        summary=f"Demo {EVIL}",
        **changes,
    )


def project_view(**changes: Any) -> ProjectView:
    releases = group_releases(
        [record("1.0"), record("2.0", yanked=EVIL), record("1.5rc1"), record("1.1")]
    )
    base: dict[str, Any] = {
        "name": "demo",
        "display_name": "Demo",
        "release": releases[-1],
        "latest": latest_release(releases),
        "releases": releases,
        "metadata": ReleaseMetadata(
            requires_dist=[f"evil; extra == '{EVIL}'"],
            classifiers=["License :: OSI Approved :: MIT License"],
            urls=[
                Link("Source", "https://x.example/", "https://x.example/"),
                Link("Evil", "javascript:alert(1)", None),
            ],
            author=EVIL,
            license="MIT",
            keywords=["a", "b"],
        ),
        "description_html": "<p>Rendered <strong>README</strong></p>",
    }
    base.update(changes)
    return ProjectView(**base)


def test_every_static_file_is_versioned():
    files = load_static()
    assert {"stratus.css", "stratus.js", "favicon.svg"} <= files.keys()
    assert files["stratus.css"].content_type.startswith("text/css")
    assert files["favicon.svg"].content_type == "image/svg+xml"


def test_home_escapes_summaries_and_links_projects():
    projects = [ProjectSummary("demo", "Demo", 1_700_000_000.0, 3, EVIL)]
    html = render("home.html", Identity("bob"), listing=paginate(projects, 1))
    assert EVIL not in html and "&lt;script&gt;" in html
    assert 'href="/stage/project/demo/"' in html
    assert "Corp &lt;Index&gt;" in html  # the site title is escaped too


def test_home_offers_sign_in_when_anonymous_sees_nothing():
    html = render("home.html", listing=paginate([], 1))
    assert 'href="/stage/login"' in html and "No project is visible" in html


def test_pagination_keeps_the_query():
    projects = [ProjectSummary(f"p{i}", f"p{i}", 0.0, 1) for i in range(120)]
    html = render("search.html", query="a&b", listing=paginate(projects, 2))
    assert 'href="/stage/search?q=a%26b&amp;page=3"' in html
    assert 'href="/stage/search?q=a%26b&amp;page=1"' in html


def test_project_page_shows_everything_and_escapes_metadata():
    html = render(
        "project.html",
        Identity("bob"),
        view=project_view(),
        install_command="pip install --index-url https://pypi.example.com/simple/ demo==1.0",
        may_manage=True,
    )
    assert EVIL not in html
    assert "<p>Rendered <strong>README</strong></p>" in html  # sanitized at upload: as is
    assert 'href="javascript' not in html and "javascript:alert(1)</code>" in html
    assert html.count('class="badge yanked"') == 1  # 2.0 in the history
    assert "This is not the latest release" in html  # 1.0 shown, 1.1 is the latest
    assert 'href="/stage/files/demo/demo-1.0-py3-none-any.whl"' in html
    assert "ab" * 32 in html and "2.0 kB" in html
    assert 'href="/stage/manage/project/demo/"' in html
    assert format_date(1_700_000_000.0) in html


def test_a_yanked_release_says_so():
    view = project_view()
    yanked = next(r for r in view.releases if r.yanked)
    html = render(
        "project.html",
        view=project_view(release=yanked, metadata=None, description_html=None),
        install_command="pip install demo==2.0",
        may_manage=False,
    )
    assert "This release is yanked: &lt;script&gt;" in html
    assert "has not provided a project description" in html
    assert "/manage/project/" not in html


@pytest.mark.parametrize(
    ("name", "context"),
    [
        ("login.html", {"next": "/project/x/", "username": EVIL, "can_register": True}),
        ("register.html", {"username": EVIL, "token": EVIL, "open": False}),
        ("logout.html", {}),
        (
            "error.html",
            {
                "code": 404,
                "heading": "Not found",
                "detail": EVIL,
                "back": None,
                "request_path": "/project/x/",
            },
        ),
        ("upload.html", {"max_bytes": 4_500_000, "large_upload_hint": "", "result": record("1.0")}),
        ("search.html", {"query": EVIL, "listing": paginate([], 1)}),
    ],
)
def test_simple_pages_render_and_escape(name, context):
    html = render(name, **context)
    assert EVIL not in html


def test_account_page_shows_a_new_token_once_and_every_token_form_has_csrf():
    who = Identity("bob", groups=frozenset({"devs"}))
    tokens = [
        TokenRecord("id1", "bob", EVIL, "0" * 64, 1_700_000_000.0, None, None),
        TokenRecord("id2", "bob", "ci", "0" * 64, 1_700_000_000.0, 1_700_000_100.0, ["demo"]),
    ]
    html = render(
        "account.html",
        who,
        tokens=tokens,
        new_token={"name": "ci", "secret": "stratus_id2_SECRET"},
        tokens_available=True,
        can_change_password=True,
        expiry_choices=[(86400, "1 day"), (604800, "7 days"), (2592000, "30 days"), ("", "never")],
        now=1_700_000_050.0,
    )
    assert EVIL not in html and "stratus_id2_SECRET" in html
    assert html.count('name="csrf_token" value="tok-123"') == html.count('<form method="post"')
    assert "upload to demo" in html


def test_manage_pages_render_for_admins():
    admin = Identity("root", is_admin=True)
    html = render(
        "manage.html",
        admin,
        users=[UserInfo("root", True, []), UserInfo(EVIL, False, ["devs"])],
        pending=["newbie"],
        groups=[("devs", [EVIL])],
        allow_register=True,
        mutable=True,
        signup={"username": "carol", "url": "https://x/login#/?token=abc", "expires": 1.0},
        signup_available=True,
        projects=[ProjectSummary("demo", "Demo", 0.0, 1)],
    )
    assert EVIL not in html
    assert html.count('name="csrf_token"') == html.count('method="post"')
    html = render(
        "manage_project.html",
        admin,
        project="demo",
        display_name="Demo",
        acl=PackageAcl({"bob": frozenset("rw")}, {EVIL: frozenset("r")}),
        files=[record("1.0"), record("2.0", yanked="bad")],
        mutable=True,
        default_read=["authenticated"],
        default_write=[],
    )
    assert EVIL not in html
    assert html.count('name="csrf_token"') == html.count('method="post"')
    assert "/files/demo-2.0-py3-none-any.whl/unyank" in html
