"""Storage port on one S3 bucket.

- The botocore client is made on first use or by ``connect()`` (a Lambda init), not at
  import; a client can be passed in instead.
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
- Upload targets are presigned URLs. A whole-object target signs its size, its SHA-256
  (``x-amz-checksum-sha256``: S3 refuses other bytes, and ``head`` reports the checksum
  afterwards) and ``If-None-Match: *`` (the object can be written once, so nothing can
  change it between its verification and its publication); an upload session's target
  at the distribution's key itself also signs its metadata and ``x-amz-tagging:
  stratus-upload=pending`` (``upload_pending`` / ``clear_upload_pending``). ``copy`` is
  one CopyObject up to 5 GiB and a multipart copy above (parts copied in parallel inside
  S3), either with ``If-None-Match: *`` when ``if_absent``: S3 decides atomically, as
  for ``put``.
- Downloads are presigned S3 URLs, or CloudFront signed URLs when a ``url_signer`` is
  given (``stratus.adapters.cloudfront``).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..domain.keys import PENDING_UPLOAD_TAG
from ..domain.objectmeta import MAX_OBJECT_METADATA_BYTES
from ..ports import Download, ObjectInfo, PartInfo, UploadTarget
from .aws_client import new_client

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
_NO_UPLOAD_CODES = frozenset({"NoSuchUpload", "404"})
_BAD_PART_CODES = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall"})
MAX_COPY_PART_BYTES = 5 * 1024**3  # S3's limits for UploadPartCopy
# put_file: multipart parts (S3: 5 MB to 5 GB each, at most 10,000 parts); memory holds one.
PART_BYTES = 8 * 1024 * 1024
MAX_PARTS = 10_000
_PENDING_TAGGING = urlencode([PENDING_UPLOAD_TAG])  # x-amz-tagging: a URL-encoded query


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


def _raise_if_exists(exc: Exception, key: str, if_absent: bool) -> None:
    """``Conflict`` for a conditional write (``If-None-Match: *``) that found the key taken."""
    if if_absent and (_error_code(exc) in _CONFLICT_CODES or _status(exc) == 412):
        raise Conflict(f"Object {key!r} already exists.") from None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def make_client(region: str | None = None) -> Any:
    """An S3 client for a bucket in ``region``: SigV4, regional virtual-hosted endpoint
    (path-style against an emulator's endpoint)."""
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
    return new_client("s3", config, region=region)


def sha256_hex_to_b64(sha256: str) -> str:
    """S3 checksums are base64; Python packaging's are hex."""
    return base64.b64encode(bytes.fromhex(sha256)).decode()


def _full_object_sha256(response: Mapping[str, Any]) -> str | None:
    """The hex SHA-256 of a whole object from a HeadObject answer (never a composite one)."""
    value = response.get("ChecksumSHA256")
    if not value or "-" in value or response.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


class S3Storage:
    """Files in ``bucket``; downloads are presigned GET URLs valid ``presign_expiry`` seconds,
    or the URLs ``url_signer(key, filename)`` makes (CloudFront)."""

    supports_in_place_uploads = True  # the pending mark is a tag; a lifecycle rule expires it

    def __init__(
        self,
        bucket: str,
        *,
        presign_expiry: int = 300,
        client: Any = None,
        region: str | None = None,
        url_signer: Callable[[str, str], str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.presign_expiry = presign_expiry
        self.region = region
        self.url_signer = url_signer
        self._client = client
        self._client_lock = threading.Lock()
        self._page_size = 1000  # ListObjectsV2 MaxKeys; tests lower it to exercise paging
        # Larger objects are copied in parts (CopyObject's limit); tests lower both.
        self.single_copy_limit = MAX_COPY_PART_BYTES
        self.copy_part_size = 256 * 1024**2
        self.copy_threads = 8

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = make_client(self.region)
        return self._client

    def connect(self) -> None:
        """Make the S3 client now, sending nothing (Lambda init)."""
        _ = self.client

    def close_connections(self) -> None:
        """Close the client's pooled HTTP connections; the next request opens new ones."""
        if self._client is not None:
            self._client.close()

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
            _raise_if_exists(exc, key, if_absent)
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
        upload_id = self._start_multipart(key, content_type, check_user_metadata(metadata))
        try:
            parts: list[tuple[int, str]] = []
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
                    parts.append((number, done["ETag"]))
                    del block
                if fh.read(1):
                    raise ValueError(f"{path} is larger than {MAX_PARTS} parts")
            self._complete(key, upload_id, parts, if_absent=if_absent)
        except BaseException:
            with contextlib.suppress(Exception):
                self.abort_multipart(key, upload_id)
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
            response = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
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
            sha256=_full_object_sha256(response),
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)  # S3: no error if absent

    def download(self, key: str, filename: str) -> Download:
        if self.url_signer is not None:
            return Download(url=self.url_signer(key, filename))
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

    # --- bytes that do not pass through the app ----------------------------------------

    def read_range(self, key: str, start: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        if length <= 0:
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise NotFound(f"No object {key!r}.") from None
            if _error_code(exc) == "InvalidRange":  # start at or past the end
                return b""
            raise
        body = response["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def presign_put(
        self,
        key: str,
        *,
        size: int,
        sha256: str,
        expires: int,
        metadata: dict[str, str] | None = None,
        pending: bool = False,
    ) -> UploadTarget:
        checksum = sha256_hex_to_b64(sha256)
        meta = check_user_metadata(metadata)
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentLength": size,
            "ChecksumSHA256": checksum,
            "IfNoneMatch": "*",
            "ServerSideEncryption": "AES256",
        }
        headers = {
            "x-amz-checksum-sha256": checksum,
            "If-None-Match": "*",
            "x-amz-server-side-encryption": "AES256",
        }
        if meta:
            params["Metadata"] = meta
            headers.update({f"x-amz-meta-{name}": value for name, value in meta.items()})
        if pending:
            params["Tagging"] = headers["x-amz-tagging"] = _PENDING_TAGGING
        url = self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
        return UploadTarget(url=url, method="PUT", headers=headers)

    def upload_pending(self, key: str) -> bool:
        """One GetObjectTagging: the object carries ``PENDING_UPLOAD_TAG``."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 or _error_code(exc) in _MISSING_CODES:
                return False
            raise
        tag, value = PENDING_UPLOAD_TAG
        return any(t.get("Key") == tag and t.get("Value") == value for t in response["TagSet"])

    def clear_upload_pending(self, key: str) -> None:
        """DeleteObjectTagging (the object's only tag is the mark): no copy, and the
        object's LastModified stays the PUT's."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 or _error_code(exc) in _MISSING_CODES:
                raise NotFound(f"No object {key!r}.") from None
            raise

    def create_multipart(self, key: str) -> str:
        return self._start_multipart(key, "application/octet-stream")

    def _start_multipart(
        self, key: str, content_type: str, metadata: dict[str, str] | None = None
    ) -> str:
        """CreateMultipartUpload (encrypted, as every write); the upload id."""
        extra = {} if metadata is None else {"Metadata": metadata}
        response = self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
            ServerSideEncryption="AES256",
            **extra,
        )
        return str(response["UploadId"])

    def presign_part(
        self, key: str, upload_id: str, number: int, *, size: int, expires: int
    ) -> UploadTarget:
        url = self.client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": size,
            },
            ExpiresIn=expires,
        )
        return UploadTarget(url=url, method="PUT")

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        from botocore.exceptions import ClientError

        parts: list[PartInfo] = []
        try:
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                for item in page.get("Parts", ()):
                    parts.append(
                        PartInfo(int(item["PartNumber"]), int(item["Size"]), str(item["ETag"]))
                    )
        except ClientError as exc:
            if _error_code(exc) in _NO_UPLOAD_CODES:
                raise NotFound(f"No multipart upload {upload_id!r} of {key!r}.") from None
            raise
        parts.sort(key=lambda part: part.number)
        return parts

    def complete_multipart(self, key: str, upload_id: str, parts: builtins.list[PartInfo]) -> None:
        self._complete(key, upload_id, [(p.number, p.etag) for p in parts], if_absent=True)

    def _complete(
        self, key: str, upload_id: str, parts: builtins.list[tuple[int, str]], *, if_absent: bool
    ) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "MultipartUpload": {
                "Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]
            },
        }
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.complete_multipart_upload(**kwargs)
        except ClientError as exc:
            _raise_if_exists(exc, key, if_absent)
            code = _error_code(exc)
            if code == "NoSuchUpload":
                raise NotFound(f"No multipart upload {upload_id!r} of {key!r}.") from None
            if code in _BAD_PART_CODES:
                raise ValueError(f"multipart upload of {key!r}: {exc}") from None
            raise

    def abort_multipart(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) not in _NO_UPLOAD_CODES:
                raise

    def copy(
        self,
        source: str,
        key: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        meta = check_user_metadata(metadata)
        info = self.head(source)
        if info is None:
            raise NotFound(f"No object {source!r}.")
        if info.size <= self.single_copy_limit:
            self._copy_whole(source, key, meta, content_type, if_absent)
            return
        part_size = max(self.copy_part_size, -(-info.size // MAX_PARTS))
        if part_size > MAX_COPY_PART_BYTES:
            raise ValueError(f"object {source!r} is too large to copy ({info.size} bytes)")
        ranges = [
            (start, min(start + part_size, info.size) - 1)
            for start in range(0, max(info.size, 1), part_size)
        ]
        upload_id = self._start_multipart(key, content_type, meta)

        def copy_part(numbered: tuple[int, tuple[int, int]]) -> tuple[int, str]:
            number, (first, last) = numbered
            extra = {"CopySourceRange": f"bytes={first}-{last}"} if info.size else {}
            response = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source},
                **extra,
            )
            return number, str(response["CopyPartResult"]["ETag"])

        try:
            numbered = list(enumerate(ranges, start=1))
            if len(numbered) == 1:
                parts = [copy_part(numbered[0])]
            else:
                with ThreadPoolExecutor(min(self.copy_threads, len(numbered))) as pool:
                    parts = list(pool.map(copy_part, numbered))
            self._complete(key, upload_id, parts, if_absent=if_absent)
        except BaseException:
            self.abort_multipart(key, upload_id)
            raise

    def checksum_sha256(self, key: str) -> str | None:
        """Up to 5 GiB: S3 computes it while copying the object onto itself with a SHA-256
        checksum (a multipart upload has only a checksum of its parts' checksums)."""
        from botocore.exceptions import ClientError

        info = self.head(key)
        if info is None:
            raise NotFound(f"No object {key!r}.")
        if info.sha256 is not None:
            return info.sha256
        if info.size > self.single_copy_limit:
            return None
        try:
            response = self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata=info.metadata,
                ContentType="application/octet-stream",
                ServerSideEncryption="AES256",
                ChecksumAlgorithm="SHA256",
            )
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise NotFound(f"No object {key!r}.") from None
            raise
        result = response.get("CopyObjectResult") or {}
        found = _full_object_sha256({"ChecksumSHA256": result.get("ChecksumSHA256")})
        if found is None:
            again = self.head(key)
            found = again.sha256 if again is not None else None
        return found

    def _copy_whole(
        self, source: str, key: str, meta: dict[str, str], content_type: str, if_absent: bool
    ) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "CopySource": {"Bucket": self.bucket, "Key": source},
            "MetadataDirective": "REPLACE",
            "Metadata": meta,
            "ContentType": content_type,
            "ServerSideEncryption": "AES256",
        }
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.copy_object(**kwargs)
        except ClientError as exc:
            _raise_if_exists(exc, key, if_absent)
            if _error_code(exc) in _MISSING_CODES:
                raise NotFound(f"No object {source!r}.") from None
            raise

    def health(self) -> None:
        """One HeadBucket: the bucket exists and this role may reach it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise BackendUnavailable(f"S3 bucket {self.bucket!r} cannot answer: {exc}") from exc
