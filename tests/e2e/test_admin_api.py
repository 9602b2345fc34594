"""The admin API end to end through the local API Gateway, on DynamoDB (mutable access).

One story, as an operator would live it: bootstrap the first admin by registering,
open registration, a developer registers and is approved, gets group permissions,
uploads with twine using a scoped token, and the ACL is exported and imported.
"""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from stratus.app.acl_transfer import dump, load
from tests.support.apigw import LocalHttpApi
from tests.support.distributions import wheel_bytes, write

from .conftest import BIN
from .test_clients import run

pytestmark = pytest.mark.slow


@pytest.fixture
def reconcile_queue(moto_endpoint, monkeypatch) -> str:
    """The reconcile function's queue, as the stacks wire it to the API and the function."""
    import uuid

    import boto3

    url = boto3.client("sqs").create_queue(QueueName=f"reconcile-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("STRATUS_RECONCILE_QUEUE_URL", url["QueueUrl"])
    return url["QueueUrl"]


def deliver_to_reconcile(queue: str) -> dict:
    """Lambda's SQS event source: hand the queued message to the reconcile handler."""
    import uuid

    import boto3

    from stratus.handlers import reconcile as reconcile_handler
    from tests.support.apigw import FakeLambdaContext

    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    context = FakeLambdaContext(
        function_name="stratus-reconcile",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:r",
        aws_request_id=str(uuid.uuid4()),
        timeout_seconds=900,
    )
    reconcile_handler.container.reset()  # a fresh container
    event = {"Records": [{"body": message["Body"], "eventSource": "aws:sqs"}]}
    return reconcile_handler.handler(event, context)


@pytest.fixture
def api(dynamo_table, s3_bucket, reconcile_queue, monkeypatch, tmp_path):
    config = tmp_path / "stratus.ini"
    config.write_text(
        "[stratus]\npypi.auth = dynamo\npypi.default_read = authenticated\n"
        "auth.signing_key = test-signing-key\n"
    )
    monkeypatch.setenv("STRATUS_TABLE_NAME", dynamo_table)
    monkeypatch.setenv("STRATUS_BUCKET_NAME", s3_bucket)
    monkeypatch.setenv("STRATUS_CONFIG", str(config))
    import stratus.handlers.api as handler_module

    monkeypatch.setattr(handler_module, "_asgi_handler", None)
    with LocalHttpApi(handler_module.handler) as gateway:
        yield gateway.url.rstrip("/")


def test_operator_session(api, reconcile_queue, tmp_path):
    root = ("root", "root-password-1")
    dev = ("dev", "dev-password-1")
    c = httpx.Client(base_url=api, timeout=30)

    # 1. The first user to register becomes the admin.
    r = c.put("/api/user/root/", data={"password": root[1]})
    assert r.status_code == 201 and r.json()["status"] == "admin", r.text
    assert c.get("/admin/user/", auth=root).json() == [{"username": "root", "admin": True}]

    # 2. Registration is closed until an admin opens it; then users wait for approval.
    assert c.put("/api/user/dev/", data={"password": dev[1]}).status_code == 403
    assert c.post("/admin/register/", data={"allow": "true"}, auth=root).status_code == 200
    assert c.put("/api/user/dev/", data={"password": dev[1]}).json()["status"] == "pending"
    assert c.get("/admin/pending_users/", auth=root).json() == ["dev"]
    waiting = c.get("/simple/", auth=dev)  # pending: cannot log in, and is told why
    assert waiting.status_code == 401 and "waiting for an administrator" in waiting.text
    wrong = c.get("/simple/", auth=(dev[0], "not-the-password"))
    assert wrong.status_code == 401 and "waiting" not in wrong.text
    assert c.get("/admin/user/", auth=dev).status_code == 401
    assert c.post("/admin/user/dev/approve/", auth=root).status_code == 200
    assert c.get("/admin/pending_users/", auth=root).json() == []
    assert c.get("/admin/user/", auth=dev).status_code == 403  # not an admin

    # 3. A group with write permission on one package.
    assert c.put("/admin/group/devs/", auth=root).status_code == 200
    assert c.put("/admin/user/dev/group/devs/", auth=root).status_code == 200
    for perm in ("read", "write"):
        assert c.put(f"/admin/package/demo-app/group/devs/{perm}", auth=root).status_code == 200
    assert c.get("/admin/user/dev/", auth=root).json() == {
        "username": "dev",
        "admin": False,
        "groups": ["devs"],
    }
    assert c.get("/admin/group/devs/", auth=root).json() == {
        "members": ["dev"],
        "packages": [{"package": "demo-app", "permissions": ["read", "write"]}],
    }
    assert c.get("/admin/package/demo-app/", auth=root).json() == {
        "user": [],
        "group": [{"group": "devs", "permissions": ["read", "write"]}],
    }
    assert c.get("/admin/group/", auth=root).json() == ["devs"]

    # 4. A token scoped to demo-app uploads it with twine; another project is refused.
    r = c.post("/api/tokens/", data={"name": "ci", "projects": "demo-app"}, auth=dev)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    listed = c.get("/api/tokens/", auth=dev).json()["tokens"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    dist = tmp_path / "dist"
    app = write(dist, wheel_bytes("demo-app", "1.0"))
    other = write(dist, wheel_bytes("other-lib", "1.0"))
    assert c.put("/admin/package/other-lib/user/dev/write", auth=root).status_code == 200
    up = run(
        [
            str(BIN / "twine"),
            "upload",
            "--repository-url",
            f"{api}/",
            "-u",
            "__token__",
            "-p",
            token,
            "--disable-progress-bar",
            str(app),
        ],
        cache=tmp_path / "cache",
    )
    assert up.returncode == 0, up.stdout + up.stderr
    refused = run(
        [
            str(BIN / "twine"),
            "upload",
            "--repository-url",
            f"{api}/",
            "-u",
            "__token__",
            "-p",
            token,
            "--disable-progress-bar",
            str(other),
        ],
        cache=tmp_path / "cache",
    )
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    assert c.get("/simple/demo-app/", auth=dev).status_code == 200
    token_id = listed[0]["id"]
    assert c.delete(f"/api/tokens/{token_id}", auth=dev).status_code == 200
    assert c.get("/simple/demo-app/", auth=("__token__", token)).status_code == 401

    # 5. Password change; the old password stops working at once.
    r = c.post(
        "/api/user/password",
        data={"old_password": dev[1], "new_password": "dev-password-2"},
        auth=dev,
    )
    assert r.status_code == 200, r.text
    assert c.get("/simple/demo-app/", auth=dev).status_code == 401
    dev = ("dev", "dev-password-2")
    assert c.get("/simple/demo-app/", auth=dev).status_code == 200

    # 6. Signup tokens register a user directly, even with registration closed.
    assert c.post("/admin/register/", data={"allow": "false"}, auth=root).status_code == 200
    signup = c.get("/admin/token/carol/", auth=root).json()
    assert signup["token"].startswith("carol:") and "token=" in signup["token_url"]
    r = c.put("/api/user/carol/", data={"password": "carol-password", "token": signup["token"]})
    assert r.json()["status"] == "approved", r.text
    assert (
        c.put(
            "/api/user/mallory/", data={"password": "x" * 9, "token": signup["token"]}
        ).status_code
        == 403
    )

    # 7. Export the ACL and import it into another backend: same data.
    r = c.get("/admin/acl.json.gz", auth=root)
    assert r.status_code == 200
    exported = json.loads(gzip.decompress(r.content))
    assert {u["username"] for u in exported["users"]} == {"root", "dev", "carol"}
    assert exported["groups"] == {"devs": ["dev"]}
    assert exported["packages"]["groups"]["demo-app"] == {"devs": ["read", "write"]}
    from stratus.adapters.sqlite_access import SqliteAccess

    other_backend = SqliteAccess(tmp_path / "access.sqlite3")
    load(other_backend, exported)
    assert dump(other_backend) == exported | {
        "allow_register": dump(other_backend)["allow_register"]
    }
    assert other_backend.verify_user("dev", "dev-password-2")

    # 8. Admin deletes; a rebuild starts on the reconcile function's queue (202) and its
    #    status fills in as the function works through it.
    assert c.delete("/admin/user/carol/", auth=root).status_code == 200
    assert c.delete("/admin/group/devs/", auth=root).status_code == 200
    assert c.get("/admin/package/demo-app/", auth=root).json() == {"user": [], "group": []}
    started = c.get("/admin/rebuild/", auth=root)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert started.json()["state"] == "queued"
    status_path = f"/admin/rebuild/{run_id}/"
    assert started.json()["status_url"].endswith(status_path)
    page = deliver_to_reconcile(reconcile_queue)
    assert page["run_id"] == run_id and page["complete"] is True
    status = c.get(status_path, auth=root).json()
    assert (status["state"], status["objects"], status["pages"]) == ("complete", 1, 1)


def test_brute_force_gets_429(api):
    c = httpx.Client(base_url=api, timeout=30)
    assert c.put("/api/user/root/", data={"password": "root-password-1"}).status_code == 201
    for _ in range(5):
        assert c.get("/simple/", auth=("root", "wrong")).status_code == 401
    r = c.get("/simple/", auth=("root", "root-password-1"))
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
