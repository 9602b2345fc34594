"""Upload sessions: files of any size, whose bytes go straight to storage (PEP 694-style).

1. ``create`` checks everything that can be checked before a byte moves (the caller has
   checked the uploader may write to the project): the name, version and filename agree
   and are valid, the size is within bounds, the sha256 is a digest, and the file is
   not in the index yet (unless overwriting is allowed). It records a session that
   expires after ``upload_session_ttl``.
2. The client sends the bytes to upload targets (``targets``): one one-time whole-object
   target whose SHA-256 the store itself checks, or, above
   ``upload_multipart_threshold``, the parts of a multipart upload (resumable: sent
   parts are listed by ``uploaded_parts``; parallel: any order).
3. ``complete`` checks the object in place, never holding it: its size, its SHA-256
   (the store's own checksum: checked during a whole-object upload, or computed by the
   store, S3 up to 5 GiB; else the object is streamed in chunks), and its
   core metadata read with ranged reads (a zip's central directory, a tar.gz's start);
   then publishes it through the same path as a legacy upload (``Publisher``), so the
   same 400/409 answers and the same one-winner guarantee apply. Files above
   ``upload_async_complete_bytes`` are checked and published in the background
   (``app/upload_completion``: a thread locally, a queue and a worker function on AWS):
   ``complete`` answers at once with the session ``processing``, the client polls it.

Where the bytes go. A one-target session on a store that ``supports_in_place_uploads``
(S3), with ``allow_overwrite`` off and nothing at the file's key yet, is *in place*
(``is_in_place``: its ``staging_key`` is the file's own ``file_key``): the client PUTs
straight to ``packages/<project>/<file>``, write-once (``If-None-Match: *``: a second
session, or a twine upload that landed first, gets 412), with the uploader, the
session's creation time and its id as object metadata (``objectmeta.provenance_metadata``,
``SESSION_MARKER``) and the store's pending mark (S3: the tag ``stratus-upload=pending``).
Nothing unchecked is ever indexed: sync and reconcile skip pending objects
(``sync.is_pending_upload``). Completion checks the object where it lies, then
``Publisher.publish_in_place`` removes the mark under the key's lease *before* it adds the
catalog entry (a crash in between leaves a checked orphan that reconcile indexes, never a
listed file still pending, which the lifecycle rule would delete); no server-side copy, so
completing costs the same for 1 MB or 5 GB. An object a concurrent upload replaced is
never published nor removed by the session (its marker and SHA-256 are checked under the
lease): the session answers 409. A failed or canceled session removes its object only
while it is still its own pending one; an abandoned one is expired by the bucket's
``expire-pending-uploads`` lifecycle rule. Every other session (multipart, overwrites
allowed, the local store, a key already occupied) stages under ``uploads/<session>/`` and
publishes a server-side copy.

States: ``pending`` → ``processing`` (one completer holds a lease; a crashed one's lease
runs out and another may take over; a queued completion's lease covers its wait in the
queue and the worker's run) → ``published`` or ``error`` (terminal, with the
message and HTTP status of the failure) ; ``pending``/``error`` → ``canceled``. A
completion that finds the upload unfinished (missing parts, nothing sent) leaves the
session ``pending`` so the client can send the rest. A session's bytes are removed when
it ends; abandoned ones by the bucket's lifecycle rules (``uploads/`` prefix, pending
in-place objects, incomplete multipart uploads) and the session record by its TTL.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..domain import distributions, names
from ..domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, StratusError
from ..domain.keys import file_key, staging_key
from ..domain.models import Identity
from ..domain.objectmeta import SESSION_MARKER, provenance_metadata, session_of
from ..ports import (
    Catalog,
    PartInfo,
    StagingSweeper,
    Storage,
    UploadSession,
    UploadSessions,
    UploadTarget,
)
from ..settings import Settings
from .indexing import Described
from .leases import holding
from .publish import Publisher, upload_publisher
from .ranged_reads import describe_ranged, stream_sha256
from .upload_completion import CompletionRunner

if TYPE_CHECKING:
    from .services import Services

logger = logging.getLogger(__name__)

MAX_PARTS = 10_000  # S3's limit on the parts of one multipart upload
MAX_SINGLE_PUT = 5 * 1024**3  # S3 takes at most 5 GiB in one PUT, whatever the setting
MAX_TARGETS_PER_CALL = 100  # part URLs handed out per request (bounded responses)
SWEEP_EVERY = 3600.0  # seconds between two sweeps of a store without lifecycle rules
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MIB = 1024 * 1024
STOPPED = "The check of the upload stopped unexpectedly; complete the session again."
_TAKEN = (
    "File {filename!r} already exists, or another upload of it is in progress: its bytes "
    "were stored first."
)
RETRYING = "An earlier attempt to complete this session stopped; the file is checked again."


class UploadIncomplete(InvalidInput):
    """Completion found bytes missing; the session stays ``pending`` for the rest."""


def part_count(session: UploadSession) -> int:
    return math.ceil(session.size / session.part_size) if session.part_size else 1


def part_size_of(session: UploadSession, number: int) -> int:
    """The exact size of part ``number`` (the whole file for a one-target session)."""
    if not session.part_size:
        return session.size
    return min(session.part_size, session.size - (number - 1) * session.part_size)


def is_in_place(session: UploadSession) -> bool:
    """Whether the session sends its bytes straight to the distribution's key (no staging
    copy): its "staging" key is the file's own key."""
    return session.staging_key == file_key(session.project, session.filename)


# What ends a session as failed (the file's fault, or a refusal whoever retries), with the
# HTTP status recorded for its answer; anything else leaves it to be completed again.
_FINAL_ERRORS: tuple[tuple[type[StratusError], int], ...] = (
    (Conflict, 409),
    (PermissionDenied, 403),  # e.g. the name's origin controls block publishing
    (InvalidInput, 400),
)
_FINAL_KINDS = tuple(kind for kind, _ in _FINAL_ERRORS)


def _recorded_error(session: UploadSession) -> StratusError:
    message = session.message or "The upload failed."
    kind = next((k for k, status in _FINAL_ERRORS if status == session.error_status), None)
    return (kind or InvalidInput)(message)


class UploadSessionService:
    def __init__(
        self,
        sessions: UploadSessions,
        storage: Storage,
        catalog: Catalog,
        publisher: Publisher,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        hash_parallel: int = 4,
        completions: CompletionRunner | None = None,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.catalog = catalog
        self.publisher = publisher
        self.settings = settings
        self.clock = clock
        self.hash_parallel = hash_parallel
        self.completions = completions  # None: every session completes in the request
        self._swept = 0.0

    # --- create --------------------------------------------------------------------------

    def create(
        self,
        *,
        uploader: str | None,
        name: str,
        version: str,
        filename: str,
        size: object,
        sha256: object,
    ) -> UploadSession:
        """A new session for one file; ``InvalidInput`` / ``Conflict`` before any byte moves."""
        names.validate(name)
        dist = distributions.parse(filename)
        distributions.check_matches_form(dist, name, version)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidInput("The size must be a positive number of bytes.")
        limit = self.settings.upload_session_max_bytes
        if size > limit:
            raise InvalidInput(f"The file is {size} bytes; this index takes at most {limit}.")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
            raise InvalidInput("The sha256 must be 64 hexadecimal digits.")
        if (
            not self.publisher.allow_overwrite
            and self.catalog.get_file(dist.project, filename) is not None
        ):
            raise Conflict(f"File {filename!r} already exists.")
        now = self.clock()
        self._sweep(now)
        session_id = secrets.token_hex(16)
        multipart = size > min(self.settings.upload_multipart_threshold, MAX_SINGLE_PUT)
        final_key = file_key(dist.project, filename)
        in_place = (
            not multipart
            and self.storage.supports_in_place_uploads
            and not self.publisher.allow_overwrite
            # Something at the key (an abandoned session's pending object, an orphan):
            # stage instead; the publication's copy replaces it if the file may go there.
            and self.storage.head(final_key) is None
        )
        session = UploadSession(
            session_id=session_id,
            owner=uploader,
            project=dist.project,
            display_name=name,
            version=str(dist.version),
            filename=filename,
            size=size,
            sha256=sha256.lower(),
            staging_key=final_key if in_place else staging_key(session_id, filename),
            created=now,
            expires=now + self.settings.upload_session_ttl,
        )
        if multipart:
            part = max(self.settings.upload_part_size, math.ceil(size / MAX_PARTS))
            if part >= _MIB:
                part = math.ceil(part / _MIB) * _MIB
            session.part_size = part
            session.multipart_id = self.storage.create_multipart(session.staging_key)
        try:
            self.sessions.create(session)
        except BaseException:
            if session.multipart_id:
                self.storage.abort_multipart(session.staging_key, session.multipart_id)
            raise
        return session

    def _sweep(self, now: float) -> None:
        """Local mode: staged bytes of sessions that expired a day ago go (on AWS the
        bucket's lifecycle rules do it)."""
        if not isinstance(self.storage, StagingSweeper) or now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        try:
            self.storage.sweep_staged(now - self.settings.upload_session_ttl - 24 * 3600)
        except OSError:
            logger.warning("could not sweep abandoned uploads", exc_info=True)

    # --- reading ---------------------------------------------------------------------------

    def get(self, session_id: str, who: Identity) -> UploadSession:
        """The caller's session (an admin's: anyone's); ``NotFound`` otherwise."""
        session = self.sessions.get(session_id, now=self.clock())
        if session is None or not (who.is_admin or session.owner == who.username):
            raise NotFound("No such upload session (it may have expired).")
        return session

    def targets(
        self, session: UploadSession, numbers: Iterable[int] | None = None
    ) -> list[tuple[int, UploadTarget]]:
        """``(part number, target)`` pairs: ``[(0, whole-object target)]`` for a one-target
        session; for a multipart one the parts ``numbers`` (default: the first ones, up to
        ``MAX_TARGETS_PER_CALL``)."""
        if session.status != "pending":
            raise Conflict(f"The upload session is {session.status}; it takes no more bytes.")
        expires = self.settings.upload_url_expiry
        if not session.multipart_id:
            in_place = is_in_place(session)
            extra = (
                provenance_metadata(session.owner, session.created)
                | {SESSION_MARKER: session.session_id}
                if in_place
                else None
            )
            target = self.storage.presign_put(
                session.staging_key,
                size=session.size,
                sha256=session.sha256,
                expires=expires,
                metadata=extra,
                pending=in_place,
            )
            return [(0, target)]
        count = part_count(session)
        wanted = sorted(set(numbers)) if numbers is not None else list(range(1, count + 1))
        if numbers is None:
            wanted = wanted[:MAX_TARGETS_PER_CALL]
        if len(wanted) > MAX_TARGETS_PER_CALL:
            raise InvalidInput(f"Ask for at most {MAX_TARGETS_PER_CALL} parts at a time.")
        if any(not isinstance(n, int) or not 1 <= n <= count for n in wanted):
            raise InvalidInput(f"Part numbers go from 1 to {count}.")
        return [
            (
                n,
                self.storage.presign_part(
                    session.staging_key,
                    session.multipart_id,
                    n,
                    size=part_size_of(session, n),
                    expires=expires,
                ),
            )
            for n in wanted
        ]

    def uploaded_parts(self, session: UploadSession) -> list[PartInfo]:
        """The parts stored so far (multipart sessions that are still pending)."""
        if not session.multipart_id or session.status != "pending":
            return []
        try:
            return self.storage.list_parts(session.staging_key, session.multipart_id)
        except NotFound:
            return []

    # --- complete --------------------------------------------------------------------------

    def complete(self, session_id: str, who: Identity) -> UploadSession:
        """Check and publish the session's file. Returns the session: ``published``, or
        ``processing`` while another completer holds it. Raises ``InvalidInput`` /
        ``Conflict`` for a failed file (recorded: asking again gives the same answer) and
        ``UploadIncomplete`` while bytes are missing."""
        session = self.get(session_id, who)
        if session.status == "published":
            return session
        if session.status == "canceled":
            raise Conflict("The upload session was canceled.")
        if session.status == "error":
            raise _recorded_error(session)
        now = self.clock()
        if session.status == "processing" and session.lease_until > now:
            return session
        background = self.completes_in_background(session)
        lease = (
            self.settings.upload_async_completion_lease
            if background
            else self.settings.upload_completion_lease
        )
        # A session still processing here was left by a completer that stopped (its lease
        # ran out): it may have published the file before it could say so.
        retry = session.status == "processing"
        try:  # processing: ours (or, in the background, the worker's) until the lease ends
            session = self.sessions.update(
                replace(
                    session,
                    status="processing",
                    message=RETRYING if retry else None,
                    lease_until=now + lease,
                )
            )
        except Conflict:  # another completer (or a cancel) came first
            return self.get(session_id, who)
        return self._queue(session) if background else self._process(session, retry=retry)

    def completes_in_background(self, session: UploadSession) -> bool:
        return (
            self.completions is not None
            and session.size > self.settings.upload_async_complete_bytes
        )

    def _queue(self, queued: UploadSession) -> UploadSession:
        """Hand a session marked ``processing`` (its lease covering the wait in the queue and
        the worker's run) to the background runner."""
        assert self.completions is not None
        try:
            self.completions.start(self, queued.session_id, queued.revision)
        except BaseException:
            self._settle(queued, status="pending", message=None)  # nothing queued: retryable
            raise
        return queued

    def finish_queued(self, session_id: str, revision: int) -> UploadSession | None:
        """The background half of ``complete``: check and publish a queued session.

        Runs once per queued ``revision``: a duplicate delivery finds the session taken
        (a newer revision, its lease running) and does nothing; a redelivery after a
        worker died finds the lease run out and takes over. Failures are recorded in the
        session (``error`` with the answer, or ``pending`` with a notice when bytes are
        missing or the check broke off), never raised for a file's fault. Returns the
        session as left (None: gone, or taken by another worker meanwhile).
        """
        session = self.sessions.get(session_id, now=self.clock())
        if session is None or session.status != "processing":
            return session  # done, canceled or expired meanwhile
        now = self.clock()
        if session.revision != revision and session.lease_until > now:
            return session  # another worker has it
        # Taken before (a worker died), or queued again after a completer stopped.
        retry = session.revision != revision or session.message == RETRYING
        try:
            claimed = self.sessions.update(
                replace(session, lease_until=now + self.settings.upload_async_completion_lease)
            )
        except Conflict:
            return None
        try:
            return self._process(claimed, retry=retry)
        except StratusError:
            return self.sessions.get(session_id)

    def _process(self, session: UploadSession, *, retry: bool = False) -> UploadSession:
        in_place = is_in_place(session)
        try:
            described = self._verify(session)
            try:
                if in_place:
                    self.publisher.publish_in_place(
                        described, ours=lambda: self._holds_own_object(session)
                    )
                else:
                    self.publisher.publish_staged(described, session.staging_key)
            except Conflict:
                # An earlier attempt may have published it (or, in place, unmarked our
                # object, which reconcile then indexed) before it could say so.
                if not ((retry or in_place) and self._published_by(session)):
                    raise
        except UploadIncomplete as exc:
            self._settle(session, status="pending", message=str(exc))
            raise
        except _FINAL_KINDS as exc:
            status = next(status for kind, status in _FINAL_ERRORS if isinstance(exc, kind))
            if self._settle(session, status="error", message=str(exc), error_status=status):
                self._discard_bytes(session)
            raise
        except BaseException:
            self._settle(session, status="pending", message=STOPPED)  # a retry may take over
            raise
        published = self._settle(session, status="published", message=None)
        if not in_place:  # in place, the bytes are the published file
            self._discard_bytes(session)
        return published or self.sessions.get(session.session_id) or session

    def _published_by(self, session: UploadSession) -> bool:
        """Whether the index lists the session's file as its own: published by an earlier
        attempt that stopped before it could record it (same bytes, same uploader; in
        place: the object at the key is still the one the session stored)."""
        record = self.catalog.get_file(session.project, session.filename)
        if (
            record is None
            or not hmac.compare_digest(record.sha256, session.sha256)
            or record.uploader != session.owner
        ):
            return False
        if not is_in_place(session):
            return True
        info = self.storage.head(session.staging_key)
        return info is not None and session_of(info.metadata) == session.session_id

    def _holds_own_object(self, session: UploadSession) -> bool:
        """Whether the object at an in-place session's key is still its own: its marker and
        its bytes (a concurrent upload may have replaced it)."""
        info = self.storage.head(session.staging_key)
        return (
            info is not None
            and session_of(info.metadata) == session.session_id
            and info.sha256 == session.sha256
        )

    def _settle(self, session: UploadSession, **changes: object) -> UploadSession | None:
        """Leave ``processing``; None if the session changed meanwhile (a later completer)."""
        try:
            return self.sessions.update(replace(session, lease_until=0.0, **changes))  # type: ignore[arg-type]
        except Conflict:
            logger.warning("upload session %s changed while it was processed", session.session_id)
            return None

    def _verify(self, session: UploadSession) -> Described:
        try:
            return self._check(session)
        except UploadIncomplete:
            raise
        except InvalidInput:
            # In place, another upload may have replaced the object while it was read.
            if is_in_place(session) and not self._holds_own_object(session):
                raise Conflict(_TAKEN.format(filename=session.filename)) from None
            raise

    def _check(self, session: UploadSession) -> Described:
        if session.multipart_id:
            self._join_parts(session)
        info = self.storage.head(session.staging_key)
        if info is None:
            raise UploadIncomplete("Nothing has been uploaded for this session yet.")
        in_place = is_in_place(session)
        if in_place and session_of(info.metadata) != session.session_id:
            # Its PUT was refused (412): another session's object, or a file uploaded
            # meanwhile, holds the key.
            raise Conflict(_TAKEN.format(filename=session.filename))
        if info.size != session.size:
            raise InvalidInput(
                f"The uploaded file has {info.size} bytes; the session declared {session.size}."
            )
        # The store's own checksum: checked on the way in (one-target uploads), or computed
        # inside the store (S3, up to 5 GiB); else the object is read once, in chunks.
        digest = (
            info.sha256
            or (None if in_place else self.storage.checksum_sha256(session.staging_key))
            or stream_sha256(
                self.storage, session.staging_key, session.size, parallel=self.hash_parallel
            )
        )
        if not hmac.compare_digest(digest, session.sha256):
            raise InvalidInput(
                "The sha256 digest of the uploaded file does not match the digest sent with "
                "it; the file was corrupted in transit."
            )
        return describe_ranged(
            self.storage,
            session.staging_key,
            session.filename,
            size=session.size,
            sha256=session.sha256,
            uploader=session.owner,
            display_name=session.display_name,
        )

    def _join_parts(self, session: UploadSession) -> None:
        assert session.multipart_id is not None
        try:
            stored = self.storage.list_parts(session.staging_key, session.multipart_id)
        except NotFound:
            return  # joined by an earlier completer that stopped before publishing
        by_number = {part.number: part for part in stored}
        count = part_count(session)
        missing = [n for n in range(1, count + 1) if n not in by_number]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise UploadIncomplete(f"Parts missing: {shown} (of {count}).")
        wrong = [n for n in range(1, count + 1) if by_number[n].size != part_size_of(session, n)]
        if wrong:
            raise UploadIncomplete(
                f"Part {wrong[0]} has {by_number[wrong[0]].size} bytes, not "
                f"{part_size_of(session, wrong[0])}; send it again."
            )
        try:
            self.storage.complete_multipart(
                session.staging_key,
                session.multipart_id,
                [by_number[n] for n in range(1, count + 1)],
            )
        except ValueError:
            raise UploadIncomplete("A part changed while the upload was completed.") from None
        except Conflict:
            pass  # joined already (the staged object is write-once; checked next)

    # --- cancel ----------------------------------------------------------------------------

    def cancel(self, session_id: str, who: Identity) -> UploadSession:
        session = self.get(session_id, who)
        if session.status == "canceled":
            return session
        if session.status == "published":
            raise Conflict("The file is published; delete it from the index instead.")
        if session.status == "processing" and session.lease_until > self.clock():
            raise Conflict("The upload session is being published.")
        canceled = self.sessions.update(replace(session, status="canceled", lease_until=0.0))
        self._discard_bytes(session)
        return canceled

    def _discard_bytes(self, session: UploadSession) -> None:
        """Remove what the session stored (best effort: lifecycle rules are the backstop).
        In place, only under the key's lease and only while the object is the session's
        own pending one: the key may hold a file another upload published."""
        try:
            if session.multipart_id:
                self.storage.abort_multipart(session.staging_key, session.multipart_id)
            if not is_in_place(session):
                self.storage.delete(session.staging_key)
                return
            # A writer holding the key replaces the object anyway (the lifecycle rule
            # removes it otherwise): no wait.
            busy = f"{session.staging_key!r} is being written"
            with holding(self.catalog, session.staging_key, wait=0.0, busy=busy):
                # Never a published file: a published object is not pending.
                if self.storage.upload_pending(session.staging_key) and self._holds_own_object(
                    session
                ):
                    self.storage.delete(session.staging_key)
        except Exception:
            logger.warning("could not remove the bytes of upload session %s", session.session_id)


def session_service(
    services: Services, publisher: Publisher | None = None
) -> UploadSessionService | None:
    """The deployment's upload session use case (None if it has no session store)."""
    if services.upload_sessions is None:
        return None
    if publisher is None:  # the completion worker's: guarded as the API's is
        publisher = upload_publisher(services)
    return UploadSessionService(
        services.upload_sessions,
        services.storage,
        services.catalog,
        publisher,
        services.settings,
        completions=services.upload_completions,
    )
