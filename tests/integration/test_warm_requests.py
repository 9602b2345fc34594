"""A warm request through the Lambda adapter (Mangum) as the API function serves it.

Under Mangum every invocation runs on a new event loop, so anything a request hands to a
worker thread starts a new thread: that was most of a warm project page's cost. A page
that cannot wait on an upstream (``pypi.fallback = none``) stays on the loop.
``benchmarks/bench_coldstart.py`` measures the speed; this checks the mechanism.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from mangum import Mangum

from stratus.app.publish import Publisher
from stratus.web.app import create_app
from stratus.wiring import fallback_local
from tests.support.apigw import captured_event
from tests.support.distributions import wheel_bytes

from .conftest import auth, make_services


@pytest.mark.parametrize("user", ["alice", "bob"])  # an admin; a reader (ACL read)
def test_a_warm_project_page_starts_no_thread(request, tmp_path, monkeypatch, user) -> None:
    services = make_services("local", request, tmp_path)
    services.fallback = fallback_local(services, tmp_path)  # wired as `stratus serve` does
    filename, data = wheel_bytes("demo", "1.0")
    Publisher(services.catalog, services.storage, allow_overwrite=False).upload(
        name="demo",
        version="1.0",
        filename=filename,
        data=data,
        digests={},
        uploader="alice",
    )
    handler = Mangum(create_app(services), lifespan="off", api_gateway_base_path="/")
    headers = {"Accept": "text/html", **auth(user)}
    event = captured_event("GET", "/simple/demo/", headers)
    assert handler(event, None)["statusCode"] == 200  # the first request may set things up

    started: list[Any] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    responses = [handler(event, None) for _ in range(3)]
    assert [r["statusCode"] for r in responses] == [200, 200, 200]
    assert filename in responses[0]["body"]
    assert started == []
