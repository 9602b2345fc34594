"""Tests of the local API Gateway (tests/support/apigw.py) against a tiny FastAPI app on Mangum.

The e2e tests trust this gateway to behave like HTTP API payload format 2.0, so each AWS
rule it reproduces is pinned here: event shape, base64 handling, limits and error answers.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from mangum import Mangum

from tests.support.apigw import (
    HTTP_API_MAX_PAYLOAD_BYTES,
    LAMBDA_MAX_REQUEST_BYTES,
    LAMBDA_MAX_RESPONSE_BYTES,
    LocalHttpApi,
    local_http_api,  # noqa: F401  (fixture)
)

INTERNAL_ERROR = {"message": "Internal Server Error"}
TOO_LARGE = {"message": "Request Entity Too Large"}
BINARY = bytes(range(256)) * 64  # every byte value, 16 KiB

app = FastAPI()


@app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT"])
async def echo(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {
        "path": request.url.path,
        "query": request.query_params.multi_items(),
        "cookies": request.cookies,
        "x_dup": request.headers.get("x-dup"),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_length": len(body),
        "event": request.scope["aws.event"],
        "context": {
            "aws_request_id": request.scope["aws.context"].aws_request_id,
            "function_name": request.scope["aws.context"].function_name,
            "memory_limit_in_mb": request.scope["aws.context"].memory_limit_in_mb,
            "invoked_function_arn": request.scope["aws.context"].invoked_function_arn,
            "remaining_ms": request.scope["aws.context"].get_remaining_time_in_millis(),
        },
    }


@app.post("/upload")
async def upload(name: str = Form(...), content: UploadFile = File(...)) -> dict[str, Any]:
    data = await content.read()
    return {"name": name, "filename": content.filename, "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/binary")
def binary() -> Response:
    return Response(BINARY, media_type="application/octet-stream")


@app.get("/text/{size}")
def text(size: int) -> PlainTextResponse:
    return PlainTextResponse("a" * size)


@app.get("/blob/{size}")
def blob(size: int) -> Response:
    return Response(b"\xff" * size, media_type="application/octet-stream")


@app.get("/redirect")
def redirect() -> RedirectResponse:
    return RedirectResponse("/simple/Some_Pkg/?x=1", status_code=301)


@app.get("/cookies")
def set_cookies() -> Response:
    response = Response("ok", media_type="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("boom")


handler = Mangum(app, lifespan="off")


class CountingHandler:
    """Wraps a handler to record every invocation (and optionally stall or fail)."""

    def __init__(self, inner: Any = handler, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        time.sleep(self.delay)
        return self.inner(event, context)


@pytest.fixture(scope="module")
def api() -> Iterator[LocalHttpApi]:
    with LocalHttpApi(handler) as gateway:
        yield gateway


@pytest.fixture
def client(api: LocalHttpApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c


def test_get_builds_a_format_2_event(api: LocalHttpApi) -> None:
    cookies = {"session": "s1", "theme": "dark"}
    with httpx.Client(base_url=api.url, cookies=cookies) as client:
        response = client.get(
            "/echo/some%20where",
            params=[("a", "1"), ("a", "2"), ("b", "x y"), ("empty", "")],
            headers=[("X-Dup", "one"), ("X-Dup", "two"), ("User-Agent", "pip/25.0")],
        )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]
    data = response.json()
    # What the ASGI app sees: repeated parameters, both headers, every cookie.
    assert data["query"] == [["a", "1"], ["a", "2"], ["b", "x y"], ["empty", ""]]
    assert data["x_dup"] == "one,two"
    assert data["cookies"] == {"session": "s1", "theme": "dark"}

    event = data["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/echo/some where"  # HTTP API percent-decodes rawPath
    assert event["rawQueryString"] == "a=1&a=2&b=x+y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert sorted(event["cookies"]) == ["session=s1", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-dup"] == "one,two"
    assert event["headers"]["user-agent"] == "pip/25.0"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False
    assert "body" not in event

    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012"
    assert ctx["apiId"] == api.api_id
    assert ctx["domainName"] == "127.0.0.1"
    assert ctx["domainPrefix"] == "127"
    assert ctx["http"] == {
        "method": "GET",
        "path": "/echo/some where",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pip/25.0",
    }
    assert ctx["requestId"] == response.headers["apigw-requestid"]
    assert ctx["routeKey"] == "$default"
    assert ctx["stage"] == "$default"
    assert time.strptime(ctx["time"], "%d/%b/%Y:%H:%M:%S +0000")
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 60

    assert data["context"]["function_name"] == "stratus-api"
    assert data["context"]["invoked_function_arn"].endswith(":function:stratus-api")
    assert data["context"]["aws_request_id"]
    assert data["context"]["memory_limit_in_mb"] == 1024
    assert 0 < data["context"]["remaining_ms"] <= 30_000


def test_handler_sees_plain_json_not_shared_objects() -> None:
    seen = CountingHandler(inner=lambda event, context: {"statusCode": 204})
    with LocalHttpApi(seen) as gw:
        assert httpx.get(f"{gw.url}/x?q=1").status_code == 204
    event = seen.events[0]
    assert json.loads(json.dumps(event)) == event
    assert type(event["headers"]) is dict


def test_multipart_binary_upload_round_trips_byte_exact(client: httpx.Client) -> None:
    response = client.post(
        "/upload",
        data={"name": "pkg"},
        files={"content": ("pkg-1.0-py3-none-any.whl", BINARY, "application/octet-stream")},
    )

    assert response.status_code == 200
    assert response.json() == {
        "name": "pkg",
        "filename": "pkg-1.0-py3-none-any.whl",
        "sha256": hashlib.sha256(BINARY).hexdigest(),
    }


@pytest.mark.parametrize(
    ("content_type", "base64_encoded"),
    [
        ("application/json", False),
        ("text/plain; charset=utf-8", False),
        ("application/xml", False),
        ("application/x-www-form-urlencoded", True),  # surprising, but what AWS does
        ("multipart/form-data; boundary=x", True),
        ("application/octet-stream", True),
        ("application/vnd.pypi.simple.v1+json", True),  # not clearly text: be conservative
        (None, True),
    ],
)
def test_body_is_base64_unless_clearly_text(
    client: httpx.Client, content_type: str | None, base64_encoded: bool
) -> None:
    body = b'{"k": "v\xc3\xa9"}'
    headers = {"content-type": content_type} if content_type else {}
    data = client.post("/echo/body", content=body, headers=headers).json()

    assert data["event"]["isBase64Encoded"] is base64_encoded
    if not base64_encoded:
        assert data["event"]["body"] == body.decode()
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(BINARY), 1000):
            yield BINARY[i : i + 1000]

    data = client.put(
        "/echo/chunked", content=chunks(), headers={"content-type": "application/octet-stream"}
    ).json()

    assert data["body_sha256"] == hashlib.sha256(BINARY).hexdigest()
    assert data["event"]["headers"]["content-length"] == str(len(BINARY))
    assert "transfer-encoding" not in data["event"]["headers"]


def test_binary_response_round_trips(client: httpx.Client) -> None:
    response = client.get("/binary")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == BINARY


def test_redirect_location_passes_through_unchanged(client: httpx.Client) -> None:
    response = client.get("/redirect", follow_redirects=False)

    assert response.status_code == 301
    assert response.headers["location"] == "/simple/Some_Pkg/?x=1"


def test_response_cookies_become_separate_set_cookie_headers(client: httpx.Client) -> None:
    response = client.get("/cookies")

    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("a=1") and cookies[1].startswith("b=2")


def test_keep_alive_serves_several_requests_on_one_connection(api: LocalHttpApi) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        statuses = []
        for i in range(3):
            conn.request(
                "POST", f"/echo/{i}", body=b"x" * i, headers={"content-type": "text/plain"}
            )
            if i == 0:
                sock = conn.sock
            response = conn.getresponse()
            data = json.loads(response.read())
            statuses.append(response.status)
            assert data["body_length"] == i
            assert conn.sock is sock  # no reconnect
        conn.request("GET", "/binary")
        assert conn.getresponse().read() == BINARY
        assert conn.sock is sock
        assert statuses == [200, 200, 200]
    finally:
        conn.close()


def test_request_over_10_mib_is_refused_without_invoking() -> None:
    counting = CountingHandler()
    with LocalHttpApi(counting) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
        too_big = b"\0" * (HTTP_API_MAX_PAYLOAD_BYTES + 1)
        response = client.post("/echo/big", content=too_big)
        assert response.status_code == 413
        assert response.json() == TOO_LARGE

        def chunks() -> Iterator[bytes]:
            for _ in range(11):
                yield b"\0" * (1024 * 1024)

        response = client.post("/echo/big", content=chunks())
        assert response.status_code == 413
        assert response.json() == TOO_LARGE

        # The connection is still usable afterwards.
        assert client.get("/echo/after").status_code == 200
    assert [e["rawPath"] for e in counting.events] == ["/echo/after"]
    assert gw.invocations == 1


def test_lambda_6_mib_request_limit_counts_the_base64_event() -> None:
    counting = CountingHandler()
    with LocalHttpApi(counting) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
        # 4.6 MiB of binary is ~6.1 MiB once base64-encoded: under the HTTP API quota, over
        # Lambda's invoke limit, so AWS answers 413 and the function never runs.
        binary = {"content-type": "application/octet-stream"}
        response = client.post("/echo/b", content=b"\1" * int(4.6 * 1024 * 1024), headers=binary)
        assert response.status_code == 413
        assert response.json() == TOO_LARGE
        assert counting.events == []

        ok = client.post("/echo/b", content=b"\1" * (4 * 1024 * 1024), headers=binary)
        assert ok.status_code == 200
        assert ok.json()["body_length"] == 4 * 1024 * 1024

        text = {"content-type": "text/plain"}
        fits = client.post(
            "/echo/t", content=b"a" * (LAMBDA_MAX_REQUEST_BYTES - 4096), headers=text
        )
        assert fits.status_code == 200
        over = client.post("/echo/t", content=b"a" * (LAMBDA_MAX_REQUEST_BYTES + 1), headers=text)
        assert over.status_code == 413
    assert gw.invocations == 2


def test_lambda_6_mib_response_limit(client: httpx.Client, api: LocalHttpApi) -> None:
    fits = client.get(f"/text/{LAMBDA_MAX_RESPONSE_BYTES - 4096}")
    assert fits.status_code == 200
    assert len(fits.content) == LAMBDA_MAX_RESPONSE_BYTES - 4096

    errors_before = len(api.errors)
    over = client.get(f"/text/{LAMBDA_MAX_RESPONSE_BYTES + 1}")
    assert over.status_code == 500
    assert over.json() == INTERNAL_ERROR

    # Binary responses are base64 in the Lambda payload: 5 MiB of bytes does not fit.
    blob = client.get(f"/blob/{5 * 1024 * 1024}")
    assert blob.status_code == 500
    assert blob.json() == INTERNAL_ERROR
    assert len(api.errors) == errors_before + 2


def test_handler_exception_is_a_500(client: httpx.Client) -> None:
    def raising(event: dict[str, Any], context: Any) -> Any:
        raise ValueError("kaput")

    with LocalHttpApi(raising) as gw:
        response = httpx.get(f"{gw.url}/anything")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == INTERNAL_ERROR
    assert isinstance(gw.errors[0], ValueError)

    # An unhandled exception inside the ASGI app ends the same way through Mangum.
    assert client.get("/boom").status_code == 500


def test_factory_is_called_lazily_once_and_retried_after_init_error() -> None:
    calls = []

    def factory() -> Any:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise ImportError("cold start failed")
        return handler

    with LocalHttpApi(factory) as gw:
        assert calls == []
        first = httpx.get(f"{gw.url}/echo/1")
        assert first.status_code == 500
        assert first.json() == INTERNAL_ERROR
        assert httpx.get(f"{gw.url}/echo/2").status_code == 200
        assert httpx.get(f"{gw.url}/echo/3").status_code == 200
    assert calls == ["apigw-lambda", "apigw-lambda"]


@pytest.mark.parametrize(
    ("output", "status", "content_type", "body"),
    [
        ({"hello": "world"}, 200, "application/json", b'{"hello": "world"}'),
        ("plain string", 200, "application/json", b"plain string"),
        ([1, 2], 200, "application/json", b"[1, 2]"),
        ({"statusCode": 201, "body": "made"}, 201, "text/plain; charset=utf-8", b"made"),
        ({"statusCode": 200, "body": "AAEC", "isBase64Encoded": True}, 200, None, b"\0\1\2"),
        ({"statusCode": "200", "body": "x"}, 500, "application/json", None),
        ({"statusCode": 200, "body": {"not": "a string"}}, 500, "application/json", None),
        ({"statusCode": 200, "body": "%%%", "isBase64Encoded": True}, 500, None, None),
    ],
)
def test_response_conversion_rules(
    output: Any, status: int, content_type: str | None, body: bytes | None
) -> None:
    with LocalHttpApi(lambda event, context: output) as gw:
        response = httpx.get(f"{gw.url}/")
    assert response.status_code == status
    if content_type:
        assert response.headers["content-type"] == content_type
    if status == 500:
        assert response.json() == INTERNAL_ERROR
    elif body is not None:
        assert response.content == body


def test_multi_value_headers_are_ignored_in_format_2() -> None:
    output = {
        "statusCode": 200,
        "headers": {"x-single": "1"},
        "multiValueHeaders": {"x-multi": ["a", "b"]},
        "body": "",
    }
    with LocalHttpApi(lambda event, context: output) as gw:
        response = httpx.get(gw.url)
    assert response.headers["x-single"] == "1"
    assert "x-multi" not in response.headers


def test_integration_timeout_is_a_503() -> None:
    slow = CountingHandler(delay=0.5)
    with LocalHttpApi(slow, integration_timeout=0.1) as gw:
        response = httpx.get(f"{gw.url}/echo/slow")
    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}


def test_named_stage_prefixes_url_and_raw_path() -> None:
    # On a named stage the path keeps the stage prefix; the app must strip it itself.
    with LocalHttpApi(Mangum(app, lifespan="off", api_gateway_base_path="/v1"), stage="v1") as gw:
        assert gw.url.endswith("/v1")
        data = httpx.get(f"{gw.url}/echo/x").json()
        outside = httpx.get(f"http://127.0.0.1:{gw.port}/echo/x")
    assert data["event"]["rawPath"] == "/v1/echo/x"
    assert data["event"]["requestContext"]["stage"] == "v1"
    assert outside.status_code == 404
    assert outside.json() == {"message": "Not Found"}


def test_fixture_starts_and_stops_gateways(local_http_api: Any) -> None:  # noqa: F811
    gw = local_http_api(lambda: handler)
    assert httpx.get(f"{gw.url}/echo/fixture").status_code == 200
