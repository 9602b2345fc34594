"""Send bytes to a Storage upload target the way a client does, on every adapter.

S3's targets are presigned URLs, fetched over HTTP (the moto server); the local store's
are URLs of the app, whose route hands the body to ``open_upload`` with the URL's token:
this helper does that directly, so app-level tests need no web server.
"""

from __future__ import annotations

import httpx

from stratus.domain.errors import Conflict, InvalidInput, NotFound
from stratus.ports import LOCAL_UPLOAD_PATH, Storage, UploadReceiver, UploadTarget

CHUNK = 1024 * 1024


def send(store: Storage, target: UploadTarget, data: bytes, **extra_headers: str) -> int:
    """Send ``data`` to ``target``; the HTTP status a client would get (local: 200 stored,
    400 refused bytes, 404 unknown or expired target, 412 the key exists)."""
    if isinstance(store, UploadReceiver):
        assert target.url.startswith(LOCAL_UPLOAD_PATH), target.url
        try:
            sink = store.open_upload(target.url[len(LOCAL_UPLOAD_PATH) :])
        except NotFound:
            return 404
        try:
            for start in range(0, len(data), CHUNK):
                sink.write(data[start : start + CHUNK])
            sink.commit()
        except InvalidInput:
            sink.abort()
            return 400
        except Conflict:
            return 412
        return 200
    response = httpx.request(
        target.method,
        target.url,
        content=data,
        headers={**target.headers, **extra_headers},
        timeout=120,
    )
    return response.status_code
