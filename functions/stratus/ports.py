"""The ports the application depends on. Adapters in ``stratus.adapters`` implement them.

Every adapter of a port passes the same contract suite in ``tests/contract``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from .domain.audit import AuditEvent
from .domain.models import FileRecord, ProjectSummary, Tombstone
from .domain.oidc import TrustedPublisher
from .domain.origins import OriginControls
from .domain.permissions import PackageAcl
from .domain.runs import RunStatus
from .domain.upstream import FillJob, Revalidated, UpstreamPage


@runtime_checkable
class Catalog(Protocol):
    """Index metadata: which projects and files exist, with hashes and PEP 658/700 fields."""

    def add_file(self, record: FileRecord, *, overwrite: bool = False) -> None:
        """Insert a file. Raise ``Conflict`` if it exists and ``overwrite`` is False.

        Atomic: two concurrent calls for one (project, filename) give one success and one
        ``Conflict``. Also clears a sync tombstone of the same key.
        """

    def get_file(self, project: str, filename: str) -> FileRecord | None: ...

    def list_files(self, project: str) -> list[FileRecord]:
        """All files of one (normalized) project, sorted by filename; one query."""

    def list_projects(self) -> list[ProjectSummary]:
        """Every project with at least one file, sorted by name; no full-table scan."""

    def delete_file(self, project: str, filename: str) -> FileRecord | None:
        """Remove a file; return the removed record or None. Drops the project when empty.

        Leaves a tombstone with ``deleted_at`` (now) and the file's ``sha256`` (keeping a
        sync ``sequencer`` already there), so that an object the delete did not get to
        remove is not listed again (``Tombstone.hides``).
        """

    def get_tombstone(self, project: str, filename: str) -> Tombstone | None:
        """The tombstone of a removed file, if any (none once the file is added again)."""

    def set_yanked(self, project: str, filename: str, reason: str | None) -> FileRecord:
        """PEP 592: ``reason`` None un-yanks, "" yanks without reason. Raise ``NotFound``."""

    # --- used by the S3 event sync (ordered per key by the S3 event ``sequencer``) ---
    def sync_upsert(self, record: FileRecord, *, last_modified: float | None = None) -> bool:
        """Apply an ObjectCreated event. ``record.sequencer`` is set.

        No-op (False) when the key's file or tombstone has a sequencer >= the record's,
        when the stored file has the same sha256 (an API upload: no second write), or
        when the tombstone ``hides`` the object (its sha256, modified at
        ``last_modified``). Otherwise store the record, drop a tombstone, return True.
        """

    def sync_delete(self, project: str, filename: str, sequencer: str) -> bool:
        """Apply an ObjectRemoved event: unless the stored file has a newer sequencer,
        delete it and leave a tombstone carrying ``sequencer``. True if a file was removed.
        """

    # --- leases: one writer of a storage key at a time (upload, delete, reconcile) ---
    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Hold ``name`` for ``owner`` during ``seconds``; False if another owner holds it.

        Atomic: of concurrent callers exactly one gets an unheld or expired lease. The
        owner that holds it may acquire it again (which extends it).
        """

    def release_lease(self, name: str, owner: str) -> None:
        """Give ``name`` up if ``owner`` still holds it; no error otherwise."""

    def health(self) -> None:
        """Raise if the backend cannot answer."""


@dataclass(slots=True)
class ObjectInfo:
    key: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: float = 0.0
    # Hex SHA-256 of the whole object when the store itself checked the bytes against it
    # as they were written (an upload target with ``sha256``); None otherwise.
    sha256: str | None = None


@dataclass(slots=True)
class UploadTarget:
    """One request a client sends to store bytes without passing them through the app.

    On S3 a presigned URL; locally a URL rooted at the app (``LOCAL_UPLOAD_PATH``...) that
    the web layer makes absolute. The client must send exactly ``headers`` with it.
    """

    url: str
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PartInfo:
    """A stored part of a multipart upload."""

    number: int
    size: int
    etag: str


@dataclass(slots=True)
class Download:
    """How to serve a stored file: redirect to ``url``, or send the file at ``path``."""

    url: str | None = None
    path: Path | None = None


@runtime_checkable
class Storage(Protocol):
    """File bytes: distributions and their core metadata files."""

    # Whether an upload session may send its bytes straight to the distribution's key,
    # marked pending (``presign_put(pending=True)``, ``upload_pending``,
    # ``clear_upload_pending``): S3 yes (a tag, expired by a lifecycle rule); the local
    # store no (its sessions stage their bytes and publish a copy).
    supports_in_place_uploads: bool

    def put(
        self,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        """Store an object whole (readers never see a partial object).

        With ``if_absent`` the write is conditional: raise ``Conflict`` if the key exists.
        """

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        """``put`` of a local file's bytes, never held in memory whole (S3: multipart)."""

    def read(self, key: str) -> bytes:
        """The object's bytes; raise ``NotFound``."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if absent."""

    def download(self, key: str, filename: str) -> Download:
        """A presigned URL (S3) or a local path (files). Does not check existence."""

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in key order (for rebuild/reconcile), only keys
        greater than ``start_after`` when it is given (S3's ``StartAfter``)."""

    def health(self) -> None: ...

    # --- bytes that do not pass through the app (upload sessions) ---

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end); ``NotFound``."""

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
        """A one-time write of ``key``: exactly ``size`` bytes whose SHA-256 (hex) is
        ``sha256``, refused if the key exists. The store rejects other bytes, so ``head``
        then reports ``sha256``. Valid ``expires`` seconds; does not check anything now.
        The object gets ``metadata``; with ``pending`` it is marked pending
        (``upload_pending``) — only where ``supports_in_place_uploads``, else ``ValueError``."""

    def upload_pending(self, key: str) -> bool:
        """Whether the object at ``key`` is marked pending (False if absent, or never on a
        store without in-place uploads)."""

    def clear_upload_pending(self, key: str) -> None:
        """Remove the object's pending mark (nothing if it has none); ``NotFound`` if the
        object is missing."""

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload of ``key``; return its upload id."""

    def presign_part(
        self, key: str, upload_id: str, number: int, *, size: int, expires: int
    ) -> UploadTarget:
        """A write of part ``number`` (1-based) of exactly ``size`` bytes; may be repeated
        (the last write wins) until the upload is completed or aborted."""

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """The stored parts, by number; ``NotFound`` for an unknown (or finished) upload."""

    def complete_multipart(self, key: str, upload_id: str, parts: builtins.list[PartInfo]) -> None:
        """Join ``parts`` (as ``list_parts`` gave them) into ``key``, refused with
        ``Conflict`` if the key exists; ``NotFound`` for an unknown upload; ``ValueError``
        if a part is missing or changed since it was listed."""

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; no error if it is unknown."""

    def copy(
        self,
        source: str,
        key: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        """Store a copy of object ``source`` as ``key`` with new metadata, whole or not at
        all, without the bytes passing through this process. ``if_absent`` as in ``put``;
        ``NotFound`` if ``source`` is missing."""

    def checksum_sha256(self, key: str) -> str | None:
        """The object's hex SHA-256 as the store itself computes it (the bytes do not
        pass through this process), or None when it cannot: the caller then reads the
        object. ``NotFound`` if it is missing. May rewrite the object in place (same
        bytes), so only for objects nobody else writes (staged uploads)."""


# Where the local mode's upload targets point (the web layer serves this route), and the
# part of such a URL that follows it: ``<LOCAL_UPLOAD_PATH><token>``.
LOCAL_UPLOAD_PATH = "/_/storage/upload/"


class UploadSink(Protocol):
    """The receiving end of one local upload target (see ``UploadReceiver``)."""

    limit: int  # the exact number of bytes the target accepts

    def write(self, chunk: bytes) -> None:
        """Raise ``InvalidInput`` past ``limit`` bytes."""

    def commit(self) -> None:
        """Check the size (and the SHA-256 the target names) and store the bytes:
        ``InvalidInput`` for other bytes, ``Conflict`` if a one-time key exists."""

    def abort(self) -> None: ...


@runtime_checkable
class StagingSweeper(Protocol):
    """A store without lifecycle rules (local mode) removes abandoned staged uploads itself."""

    def sweep_staged(self, older_than: float) -> int:
        """Remove staged objects (``UPLOAD_PREFIX``) and multipart uploads last written
        before ``older_than`` (epoch seconds); return how many went."""


@runtime_checkable
class UploadReceiver(Protocol):
    """A store whose upload targets the app itself serves (local mode)."""

    def open_upload(self, token: str) -> UploadSink:
        """The sink of a target's token; ``NotFound`` for an invalid or expired token."""


@runtime_checkable
class AccessBackend(Protocol):
    """Who is who, and explicit per-package permissions (pypicloud's IAccessBackend core)."""

    def verify_user(self, username: str, password: str) -> bool:
        """Check a password. Must take the same time whether or not the user exists."""

    def groups(self, username: str) -> frozenset[str]:
        """The (non-special) groups the user belongs to."""

    def is_admin(self, username: str) -> bool: ...

    def package_acl(self, project: str) -> PackageAcl:
        """Explicit user and group permissions on a (normalized) project."""

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        """``{project: package_acl(project)}`` for each of ``projects``, in one query where
        the backend can (listing ``/simple/`` must not cost a lookup per project)."""

    def health(self) -> None: ...


@dataclass(slots=True)
class UserInfo:
    username: str
    admin: bool = False
    groups: list[str] = field(default_factory=list)
    pending: bool = False


@dataclass(slots=True)
class TokenRecord:
    """An API token. The secret is never stored: only its SHA-256 hex digest.

    What it allows is ``stratus.app.tokens.capabilities_of(record)``: ``capabilities`` if
    set, else (tokens made before capabilities existed) every capability for an unscoped
    token and read + upload for a scoped one.
    """

    token_id: str  # public part, the lookup key
    username: str
    name: str
    secret_sha256: str
    created: float
    expires: float | None = None  # epoch seconds, None = never
    projects: list[str] | None = None  # normalized names it may upload to; None = as the user
    # Minted by trusted publishing: ``projects`` is a grant (no ACL needed) and the token
    # may upload to them and do nothing else. ``username`` is then ``oidc:<issuer>:<lookup>``.
    upload_only: bool = False
    capabilities: list[str] | None = None  # sorted subset of domain.models.CAPABILITIES


@runtime_checkable
class TokenStore(Protocol):
    """Where API tokens live: the mutable access backend, or (for a read-only one such as a
    config file, LDAP or a remote server) SQLite locally and DynamoDB on AWS."""

    def add_token(self, token: TokenRecord, *, external_user: bool = False) -> None:
        """Store a token; raise ``Conflict`` for a taken token_id.

        The token's user must be a user of this backend (``NotFound`` otherwise), unless
        ``external_user``: the user lives in another access backend, which vouches for it.
        """

    def get_token(self, token_id: str) -> TokenRecord | None: ...

    def list_tokens(self, username: str) -> list[TokenRecord]:
        """The user's tokens, oldest first."""

    def delete_token(self, token_id: str) -> None:
        """Remove the token; no error if absent."""


@runtime_checkable
class AccessDirectory(Protocol):
    """Read side of the admin API (pypicloud's user_data / groups / *_package_permissions).

    Every access backend implements it, read-only ones included.
    """

    def list_users(self) -> list[UserInfo]:
        """Every approved user (username, admin), sorted by name; no pending ones."""

    def get_user(self, username: str) -> UserInfo | None:
        """One approved user with ``groups`` filled in, or None."""

    def list_groups(self) -> list[str]:
        """Every group name, sorted."""

    def group_members(self, group: str) -> list[str]:
        """Sorted member names; raise ``NotFound`` for an unknown group."""

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        """``{project: {"r", "w"}}`` for every project with an explicit entry for the user."""

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]: ...


class DirectoryBackend(AccessBackend, AccessDirectory, Protocol):
    """What every access backend is: logins and permissions, and the directory read."""


@runtime_checkable
class MutableAccessBackend(DirectoryBackend, TokenStore, Protocol):
    """A backend the admin API can change (SQLite, DynamoDB, Secrets Manager).

    Names are case-sensitive; project names are normalized by the caller. Every write is
    idempotent where pypicloud's is (granting twice, removing an absent member).
    """

    # --- users ---
    def create_user(
        self, username: str, password_hash: str, *, admin: bool = False, pending: bool = False
    ) -> None:
        """Raise ``Conflict`` if the name exists (approved or pending)."""

    def delete_user(self, username: str) -> None:
        """Remove the user (approved or pending), its memberships, permissions and tokens."""

    def get_password_hash(self, username: str) -> str | None:
        """The stored hash of an approved or pending user."""

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """Raise ``NotFound`` for an unknown user."""

    def set_admin(self, username: str, admin: bool) -> None: ...

    def pending_users(self) -> list[str]:
        """Registered users waiting for approval, sorted."""

    def approve_user(self, username: str) -> None:
        """Raise ``NotFound`` unless the user is pending."""

    def has_admin(self) -> bool:
        """Whether any admin exists (the first registered user becomes one if not)."""

    def create_first_admin(self, username: str, password_hash: str) -> bool:
        """Create ``username`` as an approved admin if no admin exists; else create nothing
        and return False. Atomic: of concurrent calls (same or other processes) at most
        one returns True. Raise ``Conflict`` if the name exists.
        """

    # --- groups ---
    def create_group(self, group: str) -> None:
        """No error if it exists."""

    def delete_group(self, group: str) -> None:
        """Remove the group, its memberships and its package permissions."""

    def add_member(self, username: str, group: str) -> None:
        """Creates the group if needed; raise ``NotFound`` for an unknown user."""

    def remove_member(self, username: str, group: str) -> None: ...

    # --- package permissions ---
    def set_permission(self, project: str, kind: str, name: str, perm: str, granted: bool) -> None:
        """Grant (``granted``) or revoke ``perm`` ("r" or "w") for ``kind`` "user"|"group"."""

    # --- registration ---
    def allow_register(self) -> bool: ...

    def set_allow_register(self, allow: bool) -> None: ...

    # --- API tokens: see TokenStore ---


@runtime_checkable
class AuditLog(Protocol):
    """Append-only record of security-relevant events (``stratus.domain.audit``)."""

    def record(self, event: AuditEvent) -> None:
        """Append one event durably (raise on failure; the caller decides what to do)."""

    def recent(self, limit: int = 100, *, since: float | None = None) -> list[AuditEvent]:
        """The latest ``limit`` events (oldest first), optionally only those after ``since``."""


@runtime_checkable
class ReconcileRuns(Protocol):
    """Progress of reconcile runs started from the admin API, kept for a few days."""

    def save(self, run: RunStatus) -> None:
        """Store (or replace) the run's status."""

    def get(self, run_id: str) -> RunStatus | None: ...


# --- trusted publishing (OIDC) -----------------------------------------------------------


@runtime_checkable
class TrustedPublishers(Protocol):
    """The trusted publishers of every project (see ``stratus.domain.oidc``)."""

    def add_publisher(self, publisher: TrustedPublisher) -> None:
        """Store a publisher; raise ``Conflict`` if its id exists (atomic)."""

    def get_publisher(self, project: str, publisher_id: str) -> TrustedPublisher | None: ...

    def list_publishers(self, project: str) -> list[TrustedPublisher]:
        """The project's publishers (pending ones included), sorted by id; one query."""

    def find_publishers(self, issuer: str, lookup: str) -> list[TrustedPublisher]:
        """Every publisher of any project with this issuer and lookup value; one query."""

    def activate_publisher(self, project: str, publisher_id: str) -> None:
        """Make a pending publisher a regular one; no error if it is one already;
        raise ``NotFound`` if it is gone."""

    def delete_publisher(self, project: str, publisher_id: str) -> TrustedPublisher | None:
        """Remove a publisher; return it, or None if there was none."""


@runtime_checkable
class ReplayGuard(Protocol):
    """One-time use of OIDC token ids (``jti``), remembered until the token expires."""

    def first_use(self, key: str, expires: float, *, now: float | None = None) -> bool:
        """Remember ``key`` until ``expires`` (epoch seconds); False if it is remembered already.

        Atomic: of concurrent calls with one key, exactly one returns True. A key whose
        ``expires`` has passed counts as new again.
        """


@runtime_checkable
class MintedTokens(Protocol):
    """Upload tokens minted by trusted publishing, short-lived (``TokenRecord.upload_only``)."""

    def add_minted_token(self, record: TokenRecord, claims: Mapping[str, str]) -> None:
        """Store the token with the token claims that minted it; ``Conflict`` on a taken id."""

    def get_minted_token(self, token_id: str) -> TokenRecord | None:
        """The token, or None if unknown or expired."""

    def minted_token_claims(self, token_id: str) -> dict[str, str] | None:
        """The claims recorded with the token (for audits), or None."""

    def revoke_minted_token(self, token_id: str) -> None:
        """Make the token unusable at once (``/_/oidc/burn-token``); no error if unknown.
        Its claims stay recorded until it would have expired."""


@runtime_checkable
class JwksSource(Protocol):
    """Where an OIDC issuer's signing keys come from."""

    def fetch_jwks(self, issuer_url: str) -> Mapping[str, object]:
        """The issuer's JSON Web Key Set (``{"keys": [...]}``), found through its
        ``/.well-known/openid-configuration``; raise ``BackendUnavailable`` on failure."""


@runtime_checkable
class MetricsSink(Protocol):
    """Business metrics: counts of uploads, downloads, failed logins... (EMF on Lambda)."""

    def count(self, name: str, value: int = 1) -> None: ...


# --- upload sessions ---------------------------------------------------------------------

SESSION_STATUSES = ("pending", "processing", "published", "error", "canceled")


@dataclass(slots=True)
class UploadSession:
    """One file's upload session (PEP 694's publishing and file upload sessions in one).

    The bytes go to ``staging_key`` outside the app (one-time whole-object target when
    ``part_size`` is 0, else a multipart upload ``multipart_id`` of parts of
    ``part_size`` bytes, the last shorter); completion checks them and publishes them.
    ``staging_key`` is ``uploads/<session>/<file>``, or the file's own key for a session
    that publishes in place (``app.upload_sessions.is_in_place``).
    """

    session_id: str
    owner: str | None  # the uploader's name; only they (or an admin) may use it
    project: str  # normalized
    display_name: str  # the name as the uploader spelled it
    version: str
    filename: str
    size: int
    sha256: str  # hex, as declared at creation
    staging_key: str
    created: float  # epoch seconds
    expires: float  # epoch seconds: gone after this (DynamoDB TTL, local sweep)
    part_size: int = 0
    multipart_id: str | None = None
    status: str = "pending"  # one of SESSION_STATUSES
    message: str | None = None  # why it failed (status "error")
    error_status: int | None = None  # the HTTP status of that failure (400, 403, 409)
    lease_until: float = 0.0  # "processing" belongs to a completer until then
    revision: int = 0  # bumped by every update (optimistic concurrency)


@runtime_checkable
class UploadSessions(Protocol):
    """Short-lived session records (SQLite locally, the index table with a TTL on AWS)."""

    def create(self, session: UploadSession) -> None:
        """Store a new session; ``Conflict`` if its id exists."""

    def get(self, session_id: str, *, now: float | None = None) -> UploadSession | None:
        """The session, or None if it does not exist or has expired (at ``now``)."""

    def update(self, session: UploadSession) -> UploadSession:
        """Store ``session`` if the stored one still has ``session.revision``; return it
        with the revision bumped. ``Conflict`` if it changed (or went) meanwhile: of two
        concurrent updates of one revision exactly one succeeds."""

    def delete(self, session_id: str) -> None:
        """Remove it; no error if absent."""


# --- upstream fallback (app.upstream, app.fill) ---------------------------------------------


@runtime_checkable
class UpstreamIndex(Protocol):
    """Another index, read-only: the fallback's upstream (``pypi.fallback_base_url``)."""

    base_url: str

    def project_page(self, project: str, etag: str | None = None) -> UpstreamPage | Revalidated:
        """The upstream's page of a (normalized) project, ``checked_at`` now; a page with
        ``exists`` False when the upstream has no such project (404/410).

        With ``etag``, an unchanged page answers ``NOT_MODIFIED`` (the caller keeps its
        copy). Raise ``UpstreamError`` on timeouts, connection errors, 5xx and
        oversized or unparsable pages.
        """

    def open_file(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a file (chunks of bounded size). Raise ``NotFound`` (404/410) or
        ``UpstreamError``; the iterator raises ``UpstreamError`` if the
        transfer breaks off."""

    def read_file(self, url: str, limit: int) -> bytes:
        """A small file (PEP 658 metadata) whole; raise ``UpstreamError`` above
        ``limit`` bytes, ``NotFound`` if missing."""


@runtime_checkable
class PageCache(Protocol):
    """Upstream project pages of one mirror, shared by every process (Lambda containers).

    Pages of any size (10,000+ files) round-trip; a page is replaced whole, never seen
    half-written.
    """

    def get(self, project: str) -> UpstreamPage | None: ...

    def put(self, page: UpstreamPage) -> None:
        """Store (replace) the page of ``page.project``."""

    def mark_checked(self, project: str, checked_at: float) -> None:
        """The upstream confirmed the cached page (304): only its ``checked_at`` changes.
        No-op when nothing is cached."""


@runtime_checkable
class OriginStore(Protocol):
    """Per-project origin controls of one index (``{"upstream", "publish"}``)."""

    def get(self, project: str) -> OriginControls | None: ...

    def put(self, project: str, controls: OriginControls) -> None:
        """Set (replace) the controls, as an admin does."""

    def claim(self, project: str, controls: OriginControls) -> OriginControls:
        """Store ``controls`` unless the project has some already; return what is stored.

        Atomic: of concurrent claims exactly one is stored, and every caller gets it back.
        """


@runtime_checkable
class FillLocks(Protocol):
    """Short-lived locks so that concurrent requests for one file start one cache fill."""

    def acquire(self, key: str, ttl_seconds: float) -> bool:
        """Take the lock unless another holder took it less than its ttl ago."""

    def release(self, key: str) -> None: ...


@runtime_checkable
class FillQueue(Protocol):
    """Where the API hands cache fills to the fill function (AWS: SQS)."""

    def enqueue(self, job: FillJob) -> None: ...
