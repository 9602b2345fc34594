"""A local stand-in for API Gateway HTTP API (payload format 2.0) in front of a Lambda handler.

Real clients (pip, uv, twine) talk plain HTTP/1.1 to :class:`LocalHttpApi`; every request
is turned into the event AWS would send, the handler is invoked in-process exactly once per
request, and its return value is turned back into an HTTP response the way AWS does it.
Each rule below names its source, so a behaviour that surprises you can be checked.

Sources (abbreviated in the comments as [n]):

[1] AWS docs, "Create AWS Lambda proxy integrations for HTTP APIs" (payload format 2.0
    event and response, the "no statusCode" inference rule):
    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
[2] AWS docs, "Quotas for configuring and running an HTTP API": payload size 10 MB,
    maximum integration timeout 30 seconds:
    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
[3] AWS docs, "Troubleshooting issues with HTTP API Lambda integrations": a failed Lambda
    integration answers ``{"message":"Internal Server Error"}`` (status 500):
    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html
[4] AWS's own emulator, aws/aws-lambda-dotnet Tools/LambdaTestTool-v2 (HttpV2 mode):
    function errors and malformed responses -> 500 ``{"message":"Internal Server Error"}``;
    a Lambda ``RequestEntityTooLargeException`` on invoke -> 413 "Request Entity Too Large"
    (LargePayloadTests.TestLambdaWithLargeRequestPayload_HttpV2, PR #1990); a response
    without Content-Type gets ``text/plain; charset=utf-8``; a response carries an
    ``Apigw-Requestid`` header; a non-object output without statusCode becomes the body.
[5] Lambda invoke limits, measured by Zac Charles, "Deep Dive: Lambda's Request/Response
    Payload Size Limit" (2022): request "must be smaller than 6291456 bytes"
    (RequestEntityTooLargeException); response limit 6291556 bytes
    (Function.ResponseSizeTooLarge, a function error).
[6] ministackorg/ministack PR #766, verified against real AWS (HTTP API, payload 2.0): the
    request body arrives as text only for ``text/*``, ``application/json``,
    ``application/xml`` and ``application/javascript``; everything else, including a
    missing Content-Type and ``application/x-www-form-urlencoded``, is base64-encoded.
[7] aws/serverless-java-container issue #377 (answer relayed from the API Gateway team) and
    Kludex/mangum issue #215: with payload format 2.0 API Gateway does not read
    ``multiValueHeaders`` in the response; multiple cookies must use ``cookies``.
[8] middleapi/standard-server PR #93 (live captures in hotsock/voker PR #8) and
    aws/aws-lambda-dotnet PR #1901: HTTP APIs deliver ``rawPath`` percent-decoded, while
    ``rawQueryString`` stays encoded and ``queryStringParameters`` are decoded.
[9] serverless/serverless issue #11222: an integration that outlives the HTTP API
    integration timeout is answered with 503.
[10] aws-powertools/powertools-lambda-python issue #621: on a named (non-``$default``)
    stage, ``rawPath`` carries the stage as a prefix.

Deliberate simplifications: one route (``$default``), no authorizers, no stage variables,
one warm Lambda execution environment (invocations are serialised, like a function with a
concurrency of one), and plain HTTP on 127.0.0.1 instead of TLS.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http
import inspect
import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest

__all__ = [
    "HTTP_API_MAX_PAYLOAD_BYTES",
    "HTTP_API_MAX_TIMEOUT_SECONDS",
    "LAMBDA_MAX_REQUEST_BYTES",
    "LAMBDA_MAX_RESPONSE_BYTES",
    "FakeLambdaContext",
    "LocalHttpApi",
    "local_http_api",
]

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

# HTTP API "Payload size: 10 MB" [2]; AWS counts in MiB (10485760 bytes).
HTTP_API_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# Synchronous Invoke request payload; larger is RequestEntityTooLargeException [5].
LAMBDA_MAX_REQUEST_BYTES = 6 * 1024 * 1024
# Synchronous Invoke response payload; larger is Function.ResponseSizeTooLarge [5].
LAMBDA_MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
# "Maximum integration timeout: 30 seconds" [2].
HTTP_API_MAX_TIMEOUT_SECONDS = 30.0

# Bodies past the limit are read and dropped up to this size so the client sees the 413
# instead of a reset connection; beyond it the connection is closed.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
_TEXT_MEDIA_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
# Connection-level headers: they describe the client's hop to the gateway, never the event.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class GatewayError:
    """A response API Gateway produces itself, without (or despite) the function."""

    status: int
    message: str

    def body(self) -> bytes:
        return json.dumps({"message": self.message}, separators=(",", ":")).encode()


# HTTP API's 413 for an over-sized request [2][4].
TOO_LARGE = GatewayError(413, "Request Entity Too Large")
# Any failed integration: exception, bad output, oversized output, init error [3][4].
INTERNAL_ERROR = GatewayError(500, "Internal Server Error")
# Integration timeout [9].
TIMED_OUT = GatewayError(503, "Service Unavailable")
# Path outside the stage: no route matches.
NOT_FOUND = GatewayError(404, "Not Found")


class _FunctionError(Exception):
    """The invocation failed: the function raised, or its output broke a Lambda limit."""


class _RequestTooLarge(Exception):
    """The request body is over the HTTP API payload quota."""

    def __init__(self, drained: bool) -> None:
        super().__init__("request body over the HTTP API payload quota")
        self.drained = drained


@dataclass
class FakeLambdaContext:
    """The attributes of the Python runtime's context object that handlers and libraries use."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_seconds: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _Invocation:
    """One queued call into the execution environment."""

    event: dict[str, Any]
    context: FakeLambdaContext
    result: Future[Any] = field(default_factory=Future)


def _is_factory(target: Callable[..., Any]) -> bool:
    """True for a zero-argument factory, false for a ``handler(event, context)`` callable."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    return not required and not any(p.kind is p.VAR_POSITIONAL for p in params)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_text(content_type: str | None) -> bool:
    """Whether HTTP API passes the body as text rather than base64 [6]."""
    media = _media_type(content_type)
    return media.startswith("text/") or media in _TEXT_MEDIA_TYPES


def _decode_path(path: str) -> str:
    """Percent-decode a path as HTTP API does [8], keeping ``%2F`` so segments stay intact."""
    return "%2F".join(unquote(part) for part in path.replace("%2f", "%2F").split("%2F"))


def _clf_time(epoch: float) -> str:
    """``12/Mar/2020:19:03:58 +0000``, the requestContext.time format [1], locale-free."""
    t = time.gmtime(epoch)
    clock = time.strftime("%H:%M:%S", t)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def _request_id() -> str:
    """An id shaped like HTTP API's (``JKJaXmPLvHcESHA=``)."""
    return base64.b64encode(os.urandom(11)).decode()


class LocalHttpApi:
    """A threaded HTTP/1.1 server that fronts a Lambda handler like an HTTP API ``$default`` route.

    ``target`` is either the handler itself, ``handler(event, context)``, or a zero-argument
    factory returning it; a factory is called on the first request, inside the execution
    environment, so the handler module is imported lazily (like a Lambda cold start, and
    retried on the next request if it fails).

    Use as a context manager; :attr:`url` is the invoke URL (with the stage path for a named
    stage). :attr:`invocations` counts calls into the handler and :attr:`errors` keeps the
    exceptions the function raised, so tests can tell a gateway answer from a function one.
    """

    def __init__(
        self,
        target: Handler | Callable[[], Handler],
        *,
        stage: str = "$default",
        host: str = "127.0.0.1",
        port: int = 0,
        max_payload_bytes: int = HTTP_API_MAX_PAYLOAD_BYTES,
        max_invoke_request_bytes: int = LAMBDA_MAX_REQUEST_BYTES,
        max_invoke_response_bytes: int = LAMBDA_MAX_RESPONSE_BYTES,
        integration_timeout: float | None = HTTP_API_MAX_TIMEOUT_SECONDS,
        function_name: str = "stratus-api",
        function_timeout: float = HTTP_API_MAX_TIMEOUT_SECONDS,
        memory_limit_in_mb: int = 1024,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        if stage != "$default" and (not stage or "/" in stage):
            raise ValueError(f"invalid stage name: {stage!r}")
        self._target = target
        self._handler: Handler | None = None if _is_factory(target) else target  # type: ignore[assignment]
        self.stage = stage
        self.host = host
        self._port = port
        self.max_payload_bytes = max_payload_bytes
        self.max_invoke_request_bytes = max_invoke_request_bytes
        self.max_invoke_response_bytes = max_invoke_response_bytes
        self.integration_timeout = integration_timeout
        self.function_name = function_name
        self.function_timeout = function_timeout
        self.memory_limit_in_mb = memory_limit_in_mb
        self.region = region
        self.account_id = account_id
        self.api_id = secrets.token_hex(5)
        self.invocations = 0
        self.errors: list[BaseException] = []
        self._queue: queue.Queue[_Invocation | None] = queue.Queue()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalHttpApi is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The invoke URL, without a trailing slash (``http://127.0.0.1:PORT[/stage]``)."""
        base = f"http://{self.host}:{self.port}"
        return base if self.stage == "$default" else f"{base}/{self.stage}"

    def start(self) -> LocalHttpApi:
        if self._server is not None:
            raise RuntimeError("LocalHttpApi is already started")
        self._server = _Server((self.host, self._port), _RequestHandler, self)
        runtime = threading.Thread(target=self._run_environment, name="apigw-lambda", daemon=True)
        serve = threading.Thread(target=self._server.serve_forever, name="apigw-http", daemon=True)
        self._threads = [runtime, serve]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._closed.is_set():
            return
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LocalHttpApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the execution environment ------------------------------------------------------------

    def _run_environment(self) -> None:
        """Run invocations one at a time on one thread with its own event loop.

        Mangum drives the ASGI app with ``asyncio.get_event_loop()``, which only works on a
        thread that has a loop; one long-lived thread also keeps module state warm between
        requests, like a reused Lambda execution environment.
        """
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            while (call := self._queue.get()) is not None:
                if call.result.set_running_or_notify_cancel():
                    try:
                        call.result.set_result(self._invoke(call.event, call.context))
                    except BaseException as exc:  # handed to the waiting request thread
                        call.result.set_exception(exc)
        finally:
            loop.close()

    def _invoke(self, event: dict[str, Any], context: FakeLambdaContext) -> Any:
        """Call the function and marshal its output like the Lambda runtime and service do."""
        try:
            if self._handler is None:
                self._handler = self._target()  # type: ignore[call-arg]
            self.invocations += 1
            output = self._handler(event, context)
            payload = json.dumps(output).encode()  # the Python runtime's serialisation
        except (Exception, SystemExit) as exc:  # init error, handler error, Runtime.MarshalError
            self.errors.append(exc)
            logger.exception("Lambda function failed (request %s)", context.aws_request_id)
            raise _FunctionError(str(exc)) from exc
        if len(payload) > self.max_invoke_response_bytes:
            # Function.ResponseSizeTooLarge: a function error, answered like any other [4][5].
            exc = _FunctionError(
                f"Response payload size ({len(payload)} bytes) exceeded maximum "
                f"allowed payload size ({self.max_invoke_response_bytes} bytes)."
            )
            self.errors.append(exc)
            logger.error("Lambda function failed: %s", exc)
            raise exc
        return json.loads(payload)

    def _call_function(self, event: dict[str, Any]) -> Any:
        context = FakeLambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_limit_in_mb,
            invoked_function_arn=(
                f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"
            ),
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=self.function_timeout,
            log_stream_name=time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
        )
        call = _Invocation(event, context)
        self._queue.put(call)
        return call.result.result(timeout=self.integration_timeout)

    # -- one request ------------------------------------------------------------------------

    def handle(self, request: _RequestHandler) -> None:
        """Serve one parsed request: limits, event, invoke, response."""
        request_id = _request_id()
        stage_prefix = "" if self.stage == "$default" else f"/{self.stage}"
        path = request.path.split("?", 1)[0]
        if stage_prefix and not (path == stage_prefix or path.startswith(f"{stage_prefix}/")):
            request.drain_body()
            request.send_gateway_error(NOT_FOUND, request_id)
            return
        try:
            body = request.read_body(self.max_payload_bytes)
        except _RequestTooLarge as exc:
            request.close_connection = request.close_connection or not exc.drained
            request.send_gateway_error(TOO_LARGE, request_id)
            return

        event = self.build_event(request, body, request_id)
        wire = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        if len(wire) > self.max_invoke_request_bytes:
            # Lambda rejects the invoke (RequestEntityTooLargeException) [5]; HTTP API
            # answers 413 "Request Entity Too Large" and the function never runs [4].
            request.send_gateway_error(TOO_LARGE, request_id)
            return
        try:
            output = self._call_function(json.loads(wire))
        except FutureTimeout:
            request.send_gateway_error(TIMED_OUT, request_id)
            return
        except _FunctionError:
            request.send_gateway_error(INTERNAL_ERROR, request_id)
            return
        try:
            status, headers, payload = self.convert_output(output)
        except (ValueError, TypeError, binascii.Error) as exc:
            self.errors.append(exc)
            logger.error("Malformed Lambda response: %s", exc)
            request.send_gateway_error(INTERNAL_ERROR, request_id)
            return
        request.send_reply(status, headers, payload, request_id)

    def build_event(self, request: _RequestHandler, body: bytes, request_id: str) -> dict[str, Any]:
        """The payload format 2.0 event for ``request`` [1]."""
        now = time.time()
        raw_target = request.path.split("#", 1)[0]
        raw_path, _, raw_query = raw_target.partition("?")
        path = _decode_path(raw_path or "/")

        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers.items():
            key = name.lower()
            if key == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
            elif key not in _HOP_BY_HOP:
                headers[key] = f"{headers[key]},{value}" if key in headers else value
        source_ip = request.client_address[0]
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
        headers["x-forwarded-port"] = str(self.port)
        headers["x-forwarded-proto"] = "http"
        headers["x-amzn-trace-id"] = f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"
        if body and "content-length" not in headers:  # a chunked upload
            headers["content-length"] = str(len(body))

        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value

        domain = headers.get("host", self.host).rsplit(":", 1)[0]
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if query:
            event["queryStringParameters"] = query
        event["requestContext"] = {
            "accountId": self.account_id,
            "apiId": self.api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": request.command,
                "path": path,
                "protocol": request.request_version,
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": self.stage,
            "time": _clf_time(now),
            "timeEpoch": int(now * 1000),
        }
        if body:
            text = None
            if _is_text(headers.get("content-type")):
                # Undecodable "text" goes base64 too: better than silently mangling bytes.
                with contextlib.suppress(UnicodeDecodeError):
                    text = body.decode("utf-8")
            event["body"] = text if text is not None else base64.b64encode(body).decode()
            event["isBase64Encoded"] = text is None
        else:
            event["isBase64Encoded"] = False
        return event

    @staticmethod
    def convert_output(output: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body for the function's (JSON round-tripped) output [1][4][7]."""
        if not isinstance(output, dict) or "statusCode" not in output:
            # Inference rule [1]; AWS takes any output without statusCode as the body, and a
            # JSON string as its value, without validating it [4].
            text = output if isinstance(output, str) else json.dumps(output)
            return 200, [("content-type", "application/json")], text.encode()

        status = output["statusCode"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid statusCode: {status!r}")
        headers: list[tuple[str, str]] = []
        for name, value in (output.get("headers") or {}).items():
            if isinstance(value, bool):
                value = str(value).lower()
            elif not isinstance(value, str | int | float):
                raise TypeError(f"header {name!r} has a non-scalar value: {value!r}")
            if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                headers.append((name, str(value)))
        # multiValueHeaders is not read with payload format 2.0 [7]: deliberately ignored.
        cookies = output.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise TypeError(f"cookies must be a list of strings: {cookies!r}")
        headers.extend(("set-cookie", cookie) for cookie in cookies)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("content-type", "text/plain; charset=utf-8"))  # [4]

        body = output.get("body")
        if body is None:
            payload = b""
        elif not isinstance(body, str):
            raise TypeError(f"body must be a string, not {type(body).__name__}")
        elif output.get("isBase64Encoded", False):
            payload = base64.b64decode(body, validate=True)
        else:
            payload = body.encode()
        return status, headers, payload


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its gateway and tracks open connections for shutdown."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, api: LocalHttpApi) -> None:
        self.api = api
        super().__init__(address, handler)


class _RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 framing (keep-alive, Content-Length, chunked bodies) around LocalHttpApi.handle."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalHttpApi"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.api._lock:
            self.server.api._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.api._lock:
            self.server.api._connections.discard(self.connection)
        super().finish()

    def handle_one_request(self) -> None:
        if self.server.api._closed.is_set():
            self.close_connection = True
            return
        super().handle_one_request()

    def _dispatch(self) -> None:
        try:
            self.server.api.handle(self)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            logger.exception("LocalHttpApi failed on %s %s", self.command, self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_gateway_error(INTERNAL_ERROR, _request_id())

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def handle_expect_100(self) -> bool:
        """Refuse an announced over-quota body before the client sends it."""
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.api.max_payload_bytes:
            self.close_connection = True
            self.send_gateway_error(TOO_LARGE, _request_id())
            return False
        return super().handle_expect_100()

    # -- request bodies ---------------------------------------------------------------------

    def _chunks(self) -> Iterator[bytes]:
        """The decoded chunks of a ``Transfer-Encoding: chunked`` body, trailers consumed."""
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ConnectionError(f"malformed chunk size line: {line!r}") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = self.rfile.read(size)
            if len(data) != size:
                raise ConnectionError("chunked body ended early")
            self.rfile.readline(65537)
            yield data

    def read_body(self, limit: int) -> bytes:
        """The request body, or _RequestTooLarge once it passes ``limit`` bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            chunks = self._chunks()
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    for rest in chunks:
                        total += len(rest)
                        if total > _DRAIN_LIMIT_BYTES:
                            raise _RequestTooLarge(drained=False)
                    raise _RequestTooLarge(drained=True)
                parts.append(chunk)
            return b"".join(parts)
        length = self._content_length()
        if length > limit:
            drained = length <= _DRAIN_LIMIT_BYTES
            if drained:
                self._discard(length)
            raise _RequestTooLarge(drained=drained)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("request body ended early")
        return body

    def drain_body(self) -> None:
        """Consume a body we will not use, so the connection can be reused."""
        try:
            self.read_body(_DRAIN_LIMIT_BYTES)
        except _RequestTooLarge:
            self.close_connection = True

    def _content_length(self) -> int:
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        if not value.strip().isdigit():
            raise ConnectionError(f"invalid Content-Length: {value!r}")
        return int(value)

    def _discard(self, length: int) -> None:
        while length > 0:
            data = self.rfile.read(min(length, 1 << 20))
            if not data:
                raise ConnectionError("request body ended early")
            length -= len(data)

    # -- responses --------------------------------------------------------------------------

    def send_gateway_error(self, error: GatewayError, request_id: str) -> None:
        headers = [("content-type", "application/json")]
        self.send_reply(error.status, headers, error.body(), request_id)

    def send_reply(
        self, status: int, headers: list[tuple[str, str]], body: bytes, request_id: str
    ) -> None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        self.send_response_only(status, reason)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "date" not in names:
            self.send_header("date", self.date_time_string())
        self.send_header("apigw-requestid", request_id)  # [4]
        bodiless = status in (204, 304) or status < 200
        if not bodiless:
            self.send_header("content-length", str(len(body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if not bodiless and self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


@pytest.fixture
def local_http_api() -> Iterator[Callable[..., LocalHttpApi]]:
    """Start gateways with ``local_http_api(handler_or_factory, **options)``; all stop at teardown.

    Import it into a test module (``from tests.support.apigw import local_http_api``) or list
    ``tests.support.apigw`` in ``pytest_plugins``.
    """
    started: list[LocalHttpApi] = []

    def start(target: Handler | Callable[[], Handler], **options: Any) -> LocalHttpApi:
        api = LocalHttpApi(target, **options).start()
        started.append(api)
        return api

    yield start
    for api in reversed(started):
        api.stop()


def captured_event(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> dict[str, Any]:
    """The event :class:`LocalHttpApi` hands the function for one real HTTP request.

    For tests and benchmarks that call a handler directly (in another process, say) with
    exactly what the gateway would send.
    """
    import http.client

    seen: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 204}

    with LocalHttpApi(record) as gateway:
        conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
        conn.request(method, path, body=body or None, headers=headers or {})
        conn.getresponse().read()
        conn.close()
    return seen[0]
