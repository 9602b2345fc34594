"""The web UI's routes in-process (FastAPI's TestClient) on local adapters: pages, sessions,
CSRF, visibility, tokens, uploads and administration."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from passlib.hash import sha256_crypt
from starlette.testclient import TestClient

from stratus.adapters.local_storage import LocalStorage
from stratus.adapters.sqlite_access import SqliteAccess
from stratus.adapters.sqlite_catalog import SqliteCatalog
from stratus.app.services import Services
from stratus.settings import Settings
from stratus.web.app import create_app
from tests.support.distributions import sdist_bytes, wheel_bytes

PASSWORDS = {"root": "root-password", "dev": "dev-password", "writer": "writer-password"}
README = "# Demo\n\nSome **bold** text.\n\n<script>document.title='pwned'</script>\n"


def fast_hash(password: str) -> str:
    return sha256_crypt.using(rounds=1000).hash(password)


@pytest.fixture
def services(tmp_path: Path) -> Services:
    access = SqliteAccess(tmp_path / "access.sqlite3")
    access.create_user("root", fast_hash(PASSWORDS["root"]), admin=True)
    access.create_user("dev", fast_hash(PASSWORDS["dev"]))
    access.create_user("writer", fast_hash(PASSWORDS["writer"]))
    access.set_permission("demo", "user", "writer", "w", True)
    access.set_permission("demo", "group", "authenticated", "r", True)
    access.set_permission("public-lib", "group", "everyone", "r", True)
    access.set_permission("hidden", "user", "root", "r", True)
    return Services(
        SqliteCatalog(tmp_path / "index.sqlite3"),
        LocalStorage(tmp_path / "files"),
        access,
        Settings(default_read=("authenticated",), site_title="Acme Index"),
        tokens=access,
        signing_key="test-signing-key-0123456789",
    )


@pytest.fixture
def app(services: Services):
    return create_app(services)


def browser(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, user: str, password: str | None = None) -> None:
    form = client.get("/login")
    answer = client.post(
        "/login",
        data={
            "username": user,
            "password": password or PASSWORDS[user],
            "csrf_token": csrf(form.text),
            "next": "/",
        },
    )
    assert answer.status_code == 303, answer.text


def listed(page: str) -> list[str]:
    """The projects a listing links to, in order."""
    return re.findall(r'<a class="project" href="/project/([^/"]+)/"', page)


def post_form(client: TestClient, page: str, action: str, **fields: str):
    token = csrf(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **fields})


def publish(services: Services, built: tuple[str, bytes], name: str, version: str) -> None:
    from stratus.app.publish import Publisher

    Publisher(services.catalog, services.storage, allow_overwrite=False).upload(
        name=name, version=version, filename=built[0], data=built[1], digests={}, uploader="root"
    )


@pytest.fixture
def published(services: Services) -> Services:
    publish(
        services,
        wheel_bytes(
            "Demo",
            "1.0",
            summary="The demo project",
            headers=("Description-Content-Type: text/markdown", "Project-URL: Docs, https://d"),
            description=README,
        ),
        "Demo",
        "1.0",
    )
    publish(services, sdist_bytes("Demo", "1.1"), "Demo", "1.1")
    publish(services, wheel_bytes("public-lib", "2.0", summary="For everyone"), "public-lib", "2.0")
    publish(services, wheel_bytes("hidden", "0.1", summary="Top secret"), "hidden", "0.1")
    return services


# --- browsing ---------------------------------------------------------------------------


def test_anonymous_visitors_see_what_everyone_may_read(app, published):
    client = browser(app)
    home = client.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert listed(home.text) == ["public-lib"]
    assert "Acme Index" in home.text
    assert listed(client.get("/search", params={"q": "everyone"}).text) == ["public-lib"]
    assert listed(client.get("/search", params={"q": "secret"}).text) == []


def test_anonymous_with_nothing_to_read_is_offered_to_sign_in(app, services):
    page = browser(app).get("/")
    assert 'href="/login"' in page.text and "No project is visible" in page.text


def test_signed_in_reader_sees_projects_newest_first(app, published):
    client = browser(app)
    sign_in(client, "dev")
    page = client.get("/").text
    assert listed(page) == ["public-lib", "demo"]  # public-lib was uploaded last
    assert re.search(r"<strong>2</strong>\s*projects", page)


def test_project_page_shows_the_release_and_the_sanitized_readme(app, published):
    client = browser(app)
    sign_in(client, "dev")
    page = client.get("/project/demo/")
    assert page.status_code == 200
    text = page.text
    assert "Demo 1.1" in text  # the latest
    assert "pip install --index-url http://testserver/simple/ demo" in text
    release = client.get("/project/demo/1.0/").text
    assert "<strong>bold</strong>" in release and "<script>document.title" not in release
    assert 'href="https://d"' in release and "The demo project" in release
    assert "pip install --index-url http://testserver/simple/ demo==1.0" in release
    assert "/manage/project/demo/" not in text  # a reader may not manage it
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/project/Demo/", "/project/demo/"),
        ("/project/demo", "/project/demo/"),
        ("/project/DEMO/1.0.0/", "/project/demo/1.0/"),
        ("/project/demo/1.0", "/project/demo/1.0/"),
    ],
)
def test_other_spellings_redirect_to_the_canonical_url(app, published, path, target):
    client = browser(app)
    sign_in(client, "dev")
    answer = client.get(path)
    assert answer.status_code == 301 and answer.headers["location"] == target


@pytest.mark.parametrize("path", ["/project/hidden/", "/project/Hidden/", "/project/hidden/0.1/"])
def test_a_hidden_project_is_not_found_even_by_url(app, published, path):
    client = browser(app)
    sign_in(client, "dev")
    answer = client.get(path)
    assert answer.status_code == 404 and "Top secret" not in answer.text
    nothing = client.get("/project/no-such-project/")
    assert nothing.status_code == 404
    # the same page for "hidden" and "absent": nothing tells them apart
    anonymize = lambda text: re.sub(r"hidden|no-such-project", "X", text)  # noqa: E731
    assert anonymize(answer.text) == anonymize(nothing.text)
    anonymous = browser(app).get(path)
    assert anonymous.status_code == 404 and 'href="/login?next=' in anonymous.text


def test_a_signed_in_browser_downloads_what_it_may_read(app, published):
    client = browser(app)
    assert client.get("/files/demo/demo-1.0-py3-none-any.whl").status_code == 401
    sign_in(client, "dev")
    assert client.get("/files/demo/demo-1.0-py3-none-any.whl").status_code == 200
    assert client.get("/files/hidden/hidden-0.1-py3-none-any.whl").status_code == 404


def test_static_files_are_versioned_and_cached(app):
    client = browser(app)
    css = re.search(r'href="(/static/stratus\.css\?v=\w+)"', client.get("/login").text)
    assert css
    answer = client.get(css.group(1))
    assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]
    assert answer.headers["content-type"].startswith("text/css")
    assert client.get("/static/stratus.css").headers["cache-control"] == "no-cache"
    assert client.get("/static/nothing.js").status_code == 404


# --- sessions ---------------------------------------------------------------------------


def test_the_session_cookie_is_http_only_lax_and_secure_over_https(app):
    plain = browser(app).get("/login")
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    secure = TestClient(app, base_url="https://testserver").get("/login")
    assert "Secure" in secure.headers["set-cookie"]


def test_wrong_password_then_right_one(app, services):
    client = browser(app)
    token = csrf(client.get("/login").text)
    wrong = client.post("/login", data={"username": "dev", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Invalid username or password" in wrong.text
    sign_in(client, "dev")
    assert "Sign out" in client.get("/").text


def test_sign_in_goes_back_to_next_but_only_on_this_site(app, services):
    client = browser(app)
    for target, expected in (
        ("/project/demo/", "/project/demo/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil", "/"),
    ):
        client.cookies.clear()
        token = csrf(client.get("/login").text)
        answer = client.post(
            "/login",
            data={
                "username": "dev",
                "password": PASSWORDS["dev"],
                "csrf_token": token,
                "next": target,
            },
        )
        assert answer.headers["location"] == expected


def test_pages_for_members_send_anonymous_visitors_to_sign_in(app):
    answer = browser(app).get("/account/")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Faccount%2F"


def test_web_sign_in_failures_count_for_basic_auth_too(app, services):
    client = browser(app)
    for _ in range(5):
        token = csrf(client.get("/login").text)
        client.post("/login", data={"username": "dev", "password": "x", "csrf_token": token})
    token = csrf(client.get("/login").text)
    locked = client.post(
        "/login", data={"username": "dev", "password": PASSWORDS["dev"], "csrf_token": token}
    )
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    basic = browser(app).get("/simple/", auth=("dev", PASSWORDS["dev"]))
    assert basic.status_code == 429


def test_sign_out_ends_the_session(app, services):
    client = browser(app)
    sign_in(client, "dev")
    answer = post_form(client, "/account/", "/logout")
    assert answer.status_code == 303
    assert client.get("/account/").status_code == 303  # back to the sign-in page


# --- CSRF -------------------------------------------------------------------------------

POSTS = [
    "/login",
    "/register",
    "/logout",
    "/account/tokens",
    "/account/password",
    "/account/tokens/abc/revoke",
    "/manage/users/dev/approve",
    "/manage/users/dev/admin",
    "/manage/users/dev/delete",
    "/manage/users/dev/groups",
    "/manage/groups",
    "/manage/groups/devs/delete",
    "/manage/registration",
    "/manage/signup-token",
    "/manage/project/demo/permissions",
    "/manage/project/demo/files/demo-1.0-py3-none-any.whl/delete",
]


@pytest.mark.parametrize("path", POSTS)
def test_every_form_is_refused_without_the_session_token(app, published, path):
    client = browser(app)
    sign_in(client, "root")
    fields = {
        "username": "dev",
        "password": "x",
        "admin": "true",
        "group": "g",
        "allow": "true",
        "kind": "user",
        "name": "dev",
        "perm": "write",
        "grant": "true",
        "groups": "g",
    }
    for token in (None, "forged-token"):
        data = fields if token is None else {**fields, "csrf_token": token}
        answer = client.post(path, data=data)
        assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
        assert "The form has expired" in answer.text
    # nothing changed
    assert published.catalog.get_file("demo", "demo-1.0-py3-none-any.whl") is not None
    assert published.access.get_user("dev") is not None
    assert not published.access.is_admin("dev")


def test_an_upload_without_the_token_is_refused(app, published):
    client = browser(app)
    sign_in(client, "root")
    built = wheel_bytes("demo", "9.0")
    answer = client.post("/upload/", files={"content": built})
    assert answer.status_code == 403
    assert published.catalog.get_file("demo", built[0]) is None


def test_a_token_from_another_session_is_refused(app, services):
    mine, theirs = browser(app), browser(app)
    sign_in(mine, "dev")
    sign_in(theirs, "dev")
    answer = mine.post(
        "/account/tokens",
        data={"csrf_token": csrf(theirs.get("/account/").text), "name": "x", "expires_in": ""},
    )
    assert answer.status_code == 403


# --- account: tokens and password --------------------------------------------------------


def test_a_token_is_shown_once_listed_used_with_twine_and_revoked(app, published):
    client = browser(app)
    sign_in(client, "writer")
    created = post_form(
        client, "/account/", "/account/tokens", name="ci", projects="Demo", expires_in="86400"
    )
    assert created.status_code == 200
    secret = re.search(r"(stratus_[A-Za-z0-9]+_[A-Za-z0-9_-]+)", created.text).group(1)
    listing = client.get("/account/").text
    assert secret not in listing and "ci" in listing and "upload to demo" in listing

    built = wheel_bytes("demo", "2.0")
    form = {
        ":action": "file_upload",
        "name": "demo",
        "version": "2.0",
        "sha256_digest": hashlib.sha256(built[1]).hexdigest(),
    }
    twine = browser(app).post("/", data=form, files={"content": built}, auth=("__token__", secret))
    assert twine.status_code == 200, twine.text

    token_id = secret.split("_")[1]
    revoked = post_form(client, "/account/", f"/account/tokens/{token_id}/revoke")
    assert revoked.status_code == 303 and "done=revoked" in revoked.headers["location"]
    again = browser(app).post(
        "/", data=form, files={"content": wheel_bytes("demo", "2.1")}, auth=("__token__", secret)
    )
    assert again.status_code == 401


def test_another_users_token_cannot_be_revoked(app, services):
    owner, other = browser(app), browser(app)
    sign_in(owner, "writer")
    created = post_form(owner, "/account/", "/account/tokens", name="t", expires_in="")
    token_id = re.search(r"stratus_([0-9a-f]+)_", created.text).group(1)
    sign_in(other, "dev")
    answer = post_form(other, "/account/", f"/account/tokens/{token_id}/revoke")
    assert answer.status_code == 404
    assert services.tokens.get_token(token_id) is not None


def test_changing_the_password_ends_the_other_sessions(app, services):
    laptop, phone = browser(app), browser(app)
    sign_in(laptop, "dev")
    sign_in(phone, "dev")
    wrong = post_form(
        laptop,
        "/account/",
        "/account/password",
        old_password="bad",
        new_password="new-password-1",
        confirm_password="new-password-1",
    )
    assert wrong.status_code == 400 and "current password is wrong" in wrong.text
    changed = post_form(
        laptop,
        "/account/",
        "/account/password",
        old_password=PASSWORDS["dev"],
        new_password="new-password-1",
        confirm_password="new-password-1",
    )
    assert changed.status_code == 303
    assert laptop.get("/account/").status_code == 200  # this session goes on
    assert phone.get("/account/").status_code == 303  # the other one has ended
    assert browser(app).get("/simple/", auth=("dev", "new-password-1")).status_code == 200


# --- uploads from the browser -------------------------------------------------------------


def test_upload_from_the_browser_then_see_the_release(app, services):
    client = browser(app)
    sign_in(client, "writer")
    built = wheel_bytes(
        "Demo",
        "3.0",
        description="Uploaded *from the browser*.",
        headers=("Description-Content-Type: text/markdown",),
    )
    token = csrf(client.get("/upload/").text)
    answer = client.post("/upload/", data={"csrf_token": token}, files={"content": built})
    assert answer.status_code == 201, answer.text
    assert 'href="/project/demo/3.0/"' in answer.text
    record = services.catalog.get_file("demo", built[0])
    assert record is not None and record.uploader == "writer" and record.display_name == "Demo"
    page = client.get("/project/demo/3.0/").text
    assert "<em>from the browser</em>" in page


def test_browser_uploads_are_validated_like_twine_uploads(app, services):
    client = browser(app)
    sign_in(client, "writer")
    token = csrf(client.get("/upload/").text)
    other = client.post(
        "/upload/", data={"csrf_token": token}, files={"content": wheel_bytes("not-mine", "1.0")}
    )
    assert other.status_code == 403
    broken = client.post(
        "/upload/",
        data={"csrf_token": token},
        files={"content": ("demo-1.0-py3-none-any.whl", b"not a zip")},
    )
    assert broken.status_code == 400 and "not a valid zip" in broken.text
    bad_name = client.post(
        "/upload/", data={"csrf_token": token}, files={"content": ("../demo-1.0.tar.gz", b"x")}
    )
    assert bad_name.status_code == 400
    assert services.catalog.list_projects() == []


# --- administration -----------------------------------------------------------------------


def test_an_admin_approves_a_user_and_grants_write(app, services):
    services.access.create_user("newbie", fast_hash("newbie-password"), pending=True)
    admin = browser(app)
    sign_in(admin, "root")
    manage = admin.get("/manage/")
    assert manage.status_code == 200 and "newbie" in manage.text
    assert post_form(admin, "/manage/", "/manage/users/newbie/approve").status_code == 303
    assert services.access.get_user("newbie") is not None
    granted = post_form(
        admin,
        "/manage/project/fresh-lib/",
        "/manage/project/fresh-lib/permissions",
        kind="user",
        name="newbie",
        perm="write",
        grant="true",
    )
    assert granted.status_code == 303
    newbie = browser(app)
    sign_in(newbie, "newbie", "newbie-password")
    token = csrf(newbie.get("/upload/").text)
    answer = newbie.post(
        "/upload/", data={"csrf_token": token}, files={"content": wheel_bytes("fresh-lib", "1.0")}
    )
    assert answer.status_code == 201


def test_admins_set_groups_flags_and_registration(app, services):
    admin = browser(app)
    sign_in(admin, "root")
    post_form(admin, "/manage/", "/manage/groups", group="devs")
    post_form(admin, "/manage/", "/manage/users/dev/groups", groups="devs qa")
    assert sorted(services.access.get_user("dev").groups) == ["devs", "qa"]
    post_form(admin, "/manage/", "/manage/users/dev/groups", groups="qa")
    assert services.access.get_user("dev").groups == ["qa"]
    reserved = post_form(admin, "/manage/", "/manage/groups", group="everyone")
    assert reserved.status_code == 400
    post_form(admin, "/manage/", "/manage/users/dev/admin", admin="true")
    assert services.access.is_admin("dev")
    post_form(admin, "/manage/", "/manage/registration", allow="true")
    assert services.access.allow_register()
    signup = post_form(admin, "/manage/", "/manage/signup-token", username="carol")
    assert signup.status_code == 200
    link = re.search(r"http://testserver/register\?username=carol&amp;token=([^<]+)<", signup.text)
    assert link, signup.text
    post_form(admin, "/manage/", "/manage/users/writer/delete")
    assert services.access.get_user("writer") is None


def test_a_demoted_admin_loses_the_manage_page_at_once(app, services):
    services.access.set_admin("dev", True)
    dev, root = browser(app), browser(app)
    sign_in(dev, "dev")
    assert dev.get("/manage/").status_code == 200
    sign_in(root, "root")
    post_form(root, "/manage/", "/manage/users/dev/admin", admin="false")
    assert dev.get("/manage/").status_code == 403


def test_non_admins_cannot_manage(app, published):
    client = browser(app)
    sign_in(client, "dev")
    assert client.get("/manage/").status_code == 403
    assert client.get("/manage/project/demo/").status_code == 403  # reads, may not write
    assert client.get("/manage/project/hidden/").status_code == 404  # may not even read


def test_writers_yank_unyank_and_delete_but_see_no_permissions(app, published):
    client = browser(app)
    sign_in(client, "writer")
    assert 'href="/manage/project/demo/"' in client.get("/project/demo/").text
    page = client.get("/manage/project/demo/")
    assert page.status_code == 200 and "Permissions" not in page.text
    filename = "demo-1.0-py3-none-any.whl"
    base = "/manage/project/demo/"
    post_form(client, base, f"{base}files/{filename}/yank", reason="broken build")
    assert published.catalog.get_file("demo", filename).yanked == "broken build"
    history = client.get("/project/demo/").text
    assert "yanked" in history
    post_form(client, base, f"{base}files/{filename}/unyank")
    assert published.catalog.get_file("demo", filename).yanked is None
    post_form(client, base, f"{base}files/{filename}/delete")
    assert published.catalog.get_file("demo", filename) is None
    # writers cannot change permissions
    answer = post_form(
        client, base, f"{base}permissions", kind="user", name="dev", perm="write", grant="true"
    )
    assert answer.status_code == 403
    assert not published.access.package_acl("demo").users.get("dev")


def test_the_ui_can_be_turned_off(services):
    from dataclasses import replace

    app = create_app(replace(services, settings=replace(services.settings, web_ui=False)))
    client = browser(app)
    assert client.get("/").status_code == 405  # only the upload API's POST is left
    assert client.get("/project/demo/").status_code == 404
    assert client.get("/login").status_code == 404
    upload = client.post("/", data={":action": "file_upload"}, auth=("root", PASSWORDS["root"]))
    assert upload.status_code == 400  # the upload API is still there


# --- registration ------------------------------------------------------------------------


def register(client: TestClient, username: str, password: str, token: str = ""):
    page = client.get("/login")  # a form (and so the session's token) even when closed
    return client.post(
        "/register",
        data={
            "csrf_token": csrf(page.text),
            "username": username,
            "password": password,
            "confirm_password": password,
            "token": token,
        },
    )


def test_registration_when_open_waits_for_approval(app, services):
    client = browser(app)
    closed = client.get("/register")
    assert "Registration is closed" in closed.text
    assert register(client, "eve", "eve-password").status_code == 403
    services.access.set_allow_register(True)
    assert 'href="/register"' in client.get("/login").text
    answer = register(client, "eve", "eve-password")
    assert answer.status_code == 200 and "an admin must approve it" in answer.text
    assert services.access.pending_users() == ["eve"]
    assert register(client, "eve", "eve-password").status_code == 409


def test_a_pending_registration_signing_in_is_told_it_waits_for_approval(app, services):
    services.access.create_user("eve", fast_hash("eve-password"), pending=True)
    waiting = "waiting for an administrator&#39;s approval"
    client = browser(app)

    def form_login(user: str, password: str):
        token = csrf(client.get("/login").text)
        data = {"username": user, "password": password, "csrf_token": token, "next": "/"}
        return client.post("/login", data=data)

    # only the right password learns that the account is pending
    wrong = form_login("eve", "not-her-password")
    assert wrong.status_code == 401 and "Invalid username or password." in wrong.text
    assert "approval" not in wrong.text
    unknown = form_login("nobody", "eve-password")
    assert unknown.status_code == 401 and "approval" not in unknown.text
    right = form_login("eve", "eve-password")
    assert right.status_code == 401 and waiting in right.text
    assert "Invalid username or password." not in right.text
    assert "stratus_session" not in right.cookies

    # the same answers to Basic auth (pip, twine)
    basic = client.get("/simple/", auth=("eve", "eve-password"))
    assert basic.status_code == 401
    assert basic.text == "401 Your account is waiting for an administrator's approval."
    basic_wrong = client.get("/simple/", auth=("eve", "wrong"))
    assert basic_wrong.status_code == 401 and "approval" not in basic_wrong.text

    services.access.approve_user("eve")
    assert client.get("/simple/", auth=("eve", "eve-password")).status_code == 200
    assert form_login("eve", "eve-password").status_code == 303


def test_a_signup_link_registers_and_signs_in_at_once(app, services):
    admin = browser(app)
    sign_in(admin, "root")
    page = post_form(admin, "/manage/", "/manage/signup-token", username="carol")
    url = re.search(r"(http://testserver/register\?[^<]+)<", page.text).group(1)
    newcomer = browser(app)
    form = newcomer.get(url.replace("&amp;", "&"))
    token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)
    assert 'value="carol"' in form.text
    answer = register(newcomer, "carol", "carol-password", token.replace("&#34;", '"'))
    assert answer.status_code == 303 and "done=registered" in answer.headers["location"]
    assert "carol" in newcomer.get("/account/").text
    assert register(browser(app), "mallory", "mallory-password", token).status_code == 403


def test_the_first_user_to_register_becomes_the_admin(tmp_path):
    access = SqliteAccess(tmp_path / "access.sqlite3")
    empty = Services(
        SqliteCatalog(tmp_path / "index.sqlite3"),
        LocalStorage(tmp_path / "files"),
        access,
        Settings(),
        tokens=access,
        signing_key="k" * 32,
    )
    client = browser(create_app(empty))
    assert register(client, "first", "first-password").status_code == 303
    assert client.get("/manage/").status_code == 200


# --- audit trail ---------------------------------------------------------------------------


def test_forms_leave_audit_records_allowed_or_refused(services, tmp_path):
    from stratus.adapters.file_audit import FileAuditLog

    services.audit = FileAuditLog(tmp_path / "audit.log", echo=False)
    app = create_app(services)
    client = browser(app)
    token = csrf(client.get("/login").text)
    failed = client.post("/login", data={"username": "dev", "password": "x", "csrf_token": token})
    assert failed.status_code == 401 and "Invalid username or password" in failed.text
    assert "Basic" not in failed.headers["www-authenticate"]  # no browser dialog
    sign_in(client, "writer")
    built = wheel_bytes("demo", "5.0")
    token = csrf(client.get("/upload/").text)
    assert client.post("/upload/", data={"csrf_token": token}, files={"content": built}).is_success
    refused = client.post("/upload/", data={"csrf_token": "forged"}, files={"content": built})
    assert refused.status_code == 403
    post_form(client, "/manage/project/demo/", f"/manage/project/demo/files/{built[0]}/yank")
    events = [(e.action, e.actor, e.target, e.result) for e in services.audit.recent(20)]
    assert ("login_failure", None, "user:dev", "denied") in events
    assert ("upload", "writer", f"demo/{built[0]}", "ok") in events
    assert ("upload", "writer", "/upload/", "denied") in events  # refused before reading it
    assert ("yank", "writer", f"demo/{built[0]}", "ok") in events
