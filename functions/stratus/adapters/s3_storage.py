"""Storage port on one S3 bucket.

- The boto3 client is made on first use, not at import (cold starts); a client can be
  passed in instead.
- Presigned URLs (and every call) use the bucket's regional virtual-hosted endpoint,
  ``https://<bucket>.s3.<region>.amazonaws.com`` (``.amazonaws.com.cn`` in China), signed
  with SigV4: the global ``s3.amazonaws.com`` host fails for buckets outside us-east-1
  (a redirect that breaks the signature) and in opt-in regions. The region is the
  bucket's (``region``; default: the session's, i.e. ``AWS_REGION`` in Lambda, where the
  stack made the bucket); us-east-1 uses its regional host too.
- Endpoints are never configured here: botocore reads ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL`` itself. When either is set (moto, LocalStack, MinIO) the client
  uses path-style addressing, so presigned URLs name ``http://127.0.0.1:<port>/<bucket>/…``
  instead of a ``<bucket>.127.0.0.1`` host that does not resolve.
- ``put(if_absent=True)`` is an S3 conditional write (``If-None-Match: *``): S3 decides
  atomically, so two concurrent uploads of one key give one success and one ``Conflict``.
- Objects are private (no ACL is ever set) and encrypted with SSE-S3, which is also the
  bucket default set by the storage stack; asking for it explicitly keeps objects
  encrypted whatever the bucket default is.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..domain.objectmeta import MAX_OBJECT_METADATA_BYTES
from ..ports import Download, ObjectInfo

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

# S3 limits on user-defined metadata (x-amz-meta-*): names are HTTP header tokens, values
# travel as header values (printable ASCII here: non-ASCII would be mangled), and names
# plus values take at most 2 KB (MAX_OBJECT_METADATA_BYTES). Both storage adapters apply
# them, so local mode accepts exactly what S3 would.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)

# Error codes of a failed conditional write: 412 when the key exists, 409 when another
# write of the same key was in progress (AWS: "a conflicting operation occurred").
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# put_file: multipart parts (S3: 5 MB to 5 GB each, at most 10,000 parts); memory holds one.
PART_BYTES = 8 * 1024 * 1024
MAX_PARTS = 10_000


def check_user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Validate user metadata against S3's rules; return it with lower-case names (as S3 does).

    Raise ``ValueError`` for a name that is not a header token, a value that is not
    printable ASCII, or more than 2 KB in all.
    """
    out: dict[str, str] = {}
    total = 0
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
            raise ValueError(f"invalid object metadata name {name!r}")
        if not isinstance(value, str) or not all(" " <= c <= "~" for c in value):
            raise ValueError(f"object metadata {name!r} must be printable ASCII: {value!r}")
        lowered = name.lower()
        if lowered in out:
            raise ValueError(f"object metadata name {name!r} given twice (names ignore case)")
        out[lowered] = value
        total += len(name) + len(value)
    if total > MAX_OBJECT_METADATA_BYTES:
        raise ValueError(
            f"object metadata takes {total} bytes; S3 allows {MAX_OBJECT_METADATA_BYTES}"
        )
    return out


def content_disposition(filename: str) -> str:
    """``attachment; filename="…"`` with an RFC 6266 ``filename*`` for anything unusual."""
    plain = all(" " <= c <= "~" and c not in '"\\' for c in filename)
    if plain:
        return f'attachment; filename="{filename}"'
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def make_client(region: str | None = None) -> Any:
    """An S3 client for a bucket in ``region``: SigV4, regional virtual-hosted endpoint
    (path-style against an emulator's endpoint)."""
    import boto3
    from botocore.config import Config

    emulated = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    config = Config(
        signature_version="s3v4",
        s3={
            "addressing_style": "path" if emulated else "virtual",
            "us_east_1_regional_endpoint": "regional",
        },
        retries={"mode": "standard"},
        connect_timeout=5,
    )
    # A session of its own: boto3's default session is not safe to set up from threads.
    return boto3.session.Session(region_name=region).client("s3", config=config)


class S3Storage:
    """Files in ``bucket``; downloads are presigned GET URLs valid ``presign_expiry`` seconds."""

    def __init__(
        self,
        bucket: str,
        *,
        presign_expiry: int = 300,
        client: Any = None,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.presign_expiry = presign_expiry
        self.region = region
        self._client = client
        self._client_lock = threading.Lock()
        self._page_size = 1000  # ListObjectsV2 MaxKeys; tests lower it to exercise paging

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = make_client(self.region)
        return self._client

    # --- Storage port ---------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
            "Metadata": check_user_metadata(metadata),
            "ServerSideEncryption": "AES256",
        }
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**kwargs)
        except ClientError as exc:
            if if_absent and (_error_code(exc) in _CONFLICT_CODES or _status(exc) == 412):
                raise Conflict(f"Object {key!r} already exists.") from None
            raise

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        """Multipart upload, one ``PART_BYTES`` buffer at a time; a single PUT if smaller.

        ``if_absent`` applies to the completion (``If-None-Match: *``), where S3 decides;
        any failure aborts the upload, so no parts linger.
        """
        from botocore.exceptions import ClientError

        path = Path(path)
        if path.stat().st_size <= PART_BYTES:
            self.put(
                key,
                path.read_bytes(),
                metadata=metadata,
                content_type=content_type,
                if_absent=if_absent,
            )
            return
        created = self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
            Metadata=check_user_metadata(metadata),
            ServerSideEncryption="AES256",
        )
        upload_id = created["UploadId"]
        try:
            parts = []
            with open(path, "rb") as fh:
                for number in range(1, MAX_PARTS + 1):
                    block = fh.read(PART_BYTES)
                    if not block:
                        break
                    done = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=block,
                    )
                    parts.append({"PartNumber": number, "ETag": done["ETag"]})
                    del block
                if fh.read(1):
                    raise ValueError(f"{path} is larger than {MAX_PARTS} parts")
            kwargs: dict[str, Any] = {}
            if if_absent:
                kwargs["IfNoneMatch"] = "*"
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **kwargs,
                )
            except ClientError as exc:
                if if_absent and (_error_code(exc) in _CONFLICT_CODES or _status(exc) == 412):
                    raise Conflict(f"Object {key!r} already exists.") from None
                raise
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise NotFound(f"No object {key!r}.") from None
            raise
        body = response["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # HEAD responses have no body: the code is the status ("404").
            if _status(exc) == 404 or _error_code(exc) in _MISSING_CODES:
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            metadata=dict(response.get("Metadata") or {}),
            last_modified=response["LastModified"].timestamp(),
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)  # S3: no error if absent

    def download(self, key: str, filename: str) -> Download:
        url = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(filename),
            },
            ExpiresIn=self.presign_expiry,
        )
        return Download(url=url)

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=prefix,
            PaginationConfig={"PageSize": self._page_size},
            **extra,
        )
        for page in pages:
            for item in page.get("Contents", ()):
                yield ObjectInfo(
                    key=item["Key"],
                    size=int(item["Size"]),
                    last_modified=item["LastModified"].timestamp(),
                )

    def health(self) -> None:
        """One HeadBucket: the bucket exists and this role may reach it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise BackendUnavailable(f"S3 bucket {self.bucket!r} cannot answer: {exc}") from exc
