"""The web UI in a real headless Chromium against ``stratus serve``.

One server for the module (a mutable SQLite access backend), seeded through the HTTP
API as an operator would: an admin, a reader, a pending registration, a public project,
one only the admin reads, and one whose README tries to run a script. Each test starts
a clean browser session. Screenshots of the main pages land in ``screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.browser import PHONE, Browser, browser_on, chromium  # noqa: F401
from tests.support.distributions import sdist_bytes, wheel_bytes, write

from .conftest import Index, running_serve
from .test_clients import twine_upload

pytestmark = pytest.mark.slow

ROOT = ("root", "root-password-1")
READER = ("reader", "reader-password-1")
NEWBIE = ("newbie", "newbie-password-1")
MARKDOWN = ("Description-Content-Type: text/markdown",)
PUBLIC_README = """# Public lib

A library **everyone** may read.

```python
from public_lib import greet
greet("world")
```
"""
HOSTILE_README = """# Demo app

Harmless **bold** text.

<script>document.title = "pwned"; window.pwned = 1;</script>

<img src="x.png" onerror="window.pwned = 2">

<a href="javascript:window.pwned = 3">a link</a>
"""


@dataclass
class Site:
    url: str
    data: Path
    dist: Path

    @property
    def index(self) -> Index:
        return Index("serve", self.url, self.data)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("webui")
    config = tmp / "stratus.ini"
    config.write_text(
        "[stratus]\npypi.auth = sqlite\npypi.default_read = authenticated\n"
        "pypi.site_title = Acme Packages\nauth.signing_key = e2e-signing-key-0123456789\n"
    )
    dist = tmp / "dist"
    files = [
        write(dist, wheel_bytes("public-lib", "1.0", summary="A library everyone may read",
                                headers=MARKDOWN, description=PUBLIC_README)),
        write(dist, sdist_bytes("public-lib", "1.0", summary="A library everyone may read")),
        write(dist, wheel_bytes("Demo_App", "1.0", summary="The demo application",
                                headers=(*MARKDOWN, "Project-URL: Source, https://git.example/demo",
                                         "Classifier: Programming Language :: Python :: 3"),
                                requires_dist=("public-lib>=1.0",), requires_python=">=3.9",
                                description=HOSTILE_README)),
        write(dist, wheel_bytes("secret-lib", "0.1", summary="Top secret")),
    ]  # fmt: skip
    with running_serve(config, tmp / "data", tmp / "serve.log") as url:
        api = httpx.Client(base_url=url, timeout=30)
        assert api.put("/api/user/root/", data={"password": ROOT[1]}).status_code == 201
        for path in (
            "/admin/package/public-lib/group/everyone/read/",
            "/admin/package/secret-lib/user/root/read/",
        ):
            assert api.put(path, auth=ROOT).status_code == 200
        assert api.put("/admin/user/reader/", data={"password": READER[1]}, auth=ROOT).is_success
        assert api.post("/admin/register/", data={"allow": "true"}, auth=ROOT).is_success
        assert api.put("/api/user/newbie/", data={"password": NEWBIE[1]}).status_code == 201
        site = Site(url, tmp / "data", dist)
        uploaded = twine_upload(site.index, files, ROOT, tmp)
        assert uploaded.returncode == 0, uploaded.stderr
        yield site


@pytest.fixture
def browser(chromium, site) -> Browser:  # noqa: F811
    return browser_on(chromium, site.url)


def project_names(browser: Browser) -> list[str]:
    """The (normalized) projects the listing on the page links to."""
    prefix = browser.base_url + "/project/"
    return [
        a.get_attribute("href")[len(prefix) :].strip("/") for a in browser.find_all("a.project")
    ]


def test_anonymous_visitors_browse_and_search(browser: Browser):
    browser.go("/")
    assert browser.title.startswith("Projects · Acme Packages")
    assert project_names(browser) == ["public-lib"]  # what `everyone` may read, nothing else
    browser.screenshot("home-anonymous")
    browser.fill("#q", "everyone")
    browser.submit(".hero form button[type=submit]")
    assert browser.path == "/search?q=everyone"
    assert project_names(browser) == ["public-lib"]
    browser.screenshot("search")
    browser.submit("a.project")  # a link: click, then wait for the next page
    assert browser.path == "/project/public-lib/"
    assert "everyone" in browser.text(".readme strong")
    assert browser.find(".readme pre .kn").text == "from"  # highlighted code
    browser.screenshot("project")
    browser.screenshot("project-phone", size=PHONE)


def test_sign_in_shows_what_the_reader_may_read(browser: Browser):
    browser.go("/login")
    browser.screenshot("login")
    browser.submit("a[href='/register']")  # registration is open on this server
    assert browser.path == "/register"
    browser.screenshot("register")
    browser.sign_in(*READER)
    assert browser.path == "/"
    assert "reader" in browser.text("header")
    assert sorted(project_names(browser)) == ["demo-app", "public-lib"]
    browser.screenshot("home")
    browser.screenshot("home-phone", size=PHONE)
    browser.go("/project/Demo_App/")  # not the normalized spelling: redirected
    assert browser.path == "/project/demo-app/"
    assert "pip install --index-url" in browser.text(".install")
    assert "public-lib>=1.0" in browser.text("#dependencies")


def test_a_hidden_project_stays_hidden_by_url(browser: Browser):
    browser.sign_in(*READER)
    browser.go("/project/secret-lib/")
    assert "Not found" in browser.text("main h1")
    assert "Top secret" not in browser.text()
    browser.screenshot("not-found")
    browser.go("/search?q=secret")
    assert project_names(browser) == []


def test_a_readme_script_does_not_execute(browser: Browser):
    browser.sign_in(*READER)
    browser.go("/project/demo-app/")
    assert re.match(r"Demo.App 1\.0 ", browser.title)
    assert browser.text(".readme strong") == "bold"
    # The site's own script ran (it reveals the copy button), so scripts were enabled...
    assert browser.find(".install button[data-copy]").is_displayed()
    # ...and none from the README did, not even through the sanitizer's leftovers.
    assert browser.driver.execute_script("return window.pwned === undefined")
    assert "pwned" not in browser.title
    assert all(
        not (a.get_attribute("href") or "").startswith("javascript")
        for a in browser.find_all(".readme a")
    )


def test_a_token_created_in_the_browser_works_with_twine(browser: Browser, site: Site, tmp_path):
    browser.sign_in(*ROOT)
    browser.go("/account/")
    browser.fill("#token-name", "ci-release")
    browser.fill("#token-projects", "Demo_App")
    browser.submit("#tokens form button[type=submit]")
    secret = browser.text("#new-token .secret")
    assert secret.startswith("stratus_")
    browser.screenshot("account-new-token")
    built = write(tmp_path / "dist", wheel_bytes("Demo_App", "1.1", summary="Version two"))
    result = twine_upload(site.index, [built], ("__token__", secret), tmp_path)
    assert result.returncode == 0, result.stderr
    browser.go("/account/")
    assert secret not in browser.text()  # shown once
    assert "ci-release" in browser.text("#tokens")
    browser.go("/project/demo-app/")
    assert re.match(r"Demo.App 1\.1 ", browser.title)


def test_upload_from_the_browser_then_see_the_release(browser: Browser, tmp_path):
    browser.sign_in(*ROOT)
    browser.go("/upload/")
    built = write(tmp_path, wheel_bytes("public-lib", "1.1", summary="A library everyone may read",
                                        headers=MARKDOWN, description=PUBLIC_README))  # fmt: skip
    browser.find("#content").send_keys(str(built))
    browser.submit("main form button[type=submit]")
    assert "Stored public_lib-1.1-py3-none-any.whl" in browser.text(".message.ok")
    browser.screenshot("upload")
    browser.submit(".message.ok a")  # a link: click, then wait for the next page
    assert browser.path == "/project/public-lib/1.1/"
    assert browser.title.startswith("public-lib 1.1")


def test_an_admin_approves_a_user_and_grants_write(browser: Browser, tmp_path):
    browser.sign_in(*ROOT)
    browser.go("/manage/")
    assert "newbie" in browser.text("#pending")
    browser.screenshot("manage")
    browser.submit("#pending form button[type=submit]")  # Approve
    assert "The user was approved." in browser.text(".message.ok")
    assert "newbie" in browser.text("#users")
    browser.go("/manage/project/newbie-lib/")
    browser.fill("#grant-name", "newbie")
    browser.find("#grant-perm option[value=write]").click()
    browser.submit("#permissions form.row button[type=submit]")
    assert "newbie" in browser.text("#permissions table")
    # An explicit entry replaces the defaults: newbie needs read too, one click in the row.
    browser.submit("#permissions button[aria-label='Grant read for user newbie']")
    assert browser.find_all("#permissions button[aria-label='Revoke read for user newbie']")
    browser.go("/manage/project/demo-app/")
    browser.screenshot("manage-project")

    browser.sign_out()
    browser.sign_in(*NEWBIE)
    browser.go("/upload/")
    built = write(tmp_path, wheel_bytes("newbie-lib", "0.1", summary="My first library"))
    browser.find("#content").send_keys(str(built))
    browser.submit("main form button[type=submit]")
    assert "Stored newbie_lib-0.1-py3-none-any.whl" in browser.text(".message.ok")
    browser.go("/project/newbie-lib/")
    assert "My first library" in browser.text(".banner")


def test_a_form_without_its_csrf_token_is_refused(browser: Browser):
    browser.sign_in(*READER)
    browser.go("/account/")
    browser.fill("#token-name", "sneaky")
    browser.driver.execute_script(
        "document.querySelectorAll('#tokens input[name=csrf_token]').forEach(e => e.remove())"
    )
    browser.submit("#tokens form button[type=submit]")
    assert "The form has expired" in browser.text("main h1")
    browser.screenshot("csrf-refused")
    browser.go("/account/")
    assert "sneaky" not in browser.text("#tokens")


def test_the_pages_work_behind_api_gateway_and_lambda(lambda_index: Index):
    """Cookies travel in payload v2's ``cookies`` fields, forms and uploads as base64."""
    client = httpx.Client(base_url=lambda_index.url, timeout=30, follow_redirects=False)
    form = client.get("/login")
    assert form.status_code == 200 and "stratus_session=" in form.headers["set-cookie"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    signed_in = client.post(
        "/login", data={"username": "alice", "password": "alice-secret", "csrf_token": token}
    )
    assert signed_in.status_code == 303, signed_in.text
    page = client.get("/upload/")
    assert "4.4 MB" in page.text and "package bucket" in page.text  # Lambda's request limit
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    built = wheel_bytes("lambda-lib", "1.0", headers=MARKDOWN, description="Via **Lambda**.")
    uploaded = client.post("/upload/", data={"csrf_token": token}, files={"content": built})
    assert uploaded.status_code == 201, uploaded.text
    project = client.get("/project/lambda-lib/")
    assert project.status_code == 200 and "<strong>Lambda</strong>" in project.text
    download = client.get("/files/lambda-lib/lambda_lib-1.0-py3-none-any.whl")
    assert download.status_code == 302  # to a presigned S3 URL, for the signed-in browser
