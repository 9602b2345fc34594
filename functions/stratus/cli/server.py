"""The local HTTP server of ``stratus serve``: uvicorn, guarded against slow clients.

uvicorn bounds concurrency (``limit_concurrency``: 503 past it) and the idle time between
two requests on a connection (``timeout_keep_alive``), but nothing bounds the time a
client takes to *send* a request: its keep-alive timer is reset by every byte, so a
client that trickles one header byte at a time (slowloris) or stalls in the middle of a
body holds a connection, and a slot, for ever. ``http_protocol.GuardedHttpProtocol``
adds header and body timeouts and a header size limit (see there). On AWS none of this
applies: API Gateway terminates client connections.

No uvicorn import at module level: ``stratus --help`` and the admin commands work
without the ``serve`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float = 10.0  # seconds to receive the request line and headers
    body_timeout: float = 30.0  # seconds without a body byte while a body is expected
    keep_alive_timeout: float = 5.0  # idle seconds between two requests on a connection
    limit_concurrency: int = 200  # connections + running requests; 503 past it
    max_header_bytes: int = 64 * 1024  # request line and headers


def run(app: Any, host: str, port: int, *, log_level: str, limits: ServerLimits) -> None:
    import uvicorn

    from .http_protocol import protocol_with

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=protocol_with(limits),
        timeout_keep_alive=int(limits.keep_alive_timeout),
        limit_concurrency=limits.limit_concurrency,
    )
