"""Records the ports exchange: plain dataclasses, no framework types."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(slots=True)
class FileRecord:
    """One distribution file in the index."""

    project: str  # normalized name, the key
    filename: str
    version: str
    sha256: str
    size: int
    upload_time: float  # seconds since the epoch, UTC
    display_name: str = ""  # the name as the uploader spelled it
    packagetype: str = "sdist"
    requires_python: str | None = None
    summary: str | None = None
    metadata_sha256: str | None = None  # PEP 658: hash of the stored core metadata file
    yanked: str | None = None  # None: not yanked; "" yanked without reason; else the reason
    uploader: str | None = None
    md5: str | None = None
    blake2_256: str | None = None
    sequencer: str = ""  # S3 event order of the object this record mirrors ("" if unknown)

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    def with_changes(self, **changes: Any) -> FileRecord:
        return replace(self, **changes)


# An object whose last-modified time is within this many seconds after an API delete may
# still be the deleted file (clocks of S3 and the API differ a little; S3 keeps seconds).
DELETE_CLOCK_SLACK_SECONDS = 5.0


@dataclass(slots=True)
class Tombstone:
    """What the catalog remembers of a removed file.

    ``sequencer``: the S3 event order of the removal the sync applied ("" if none).
    ``deleted_at`` / ``sha256``: set when the API (or reconcile) deleted the entry: when,
    and the bytes it listed. The entry goes first, the object after it; if the object
    survives a crash in between, ``hides`` tells sync and reconcile not to list it again.
    """

    sequencer: str = ""
    deleted_at: float | None = None
    sha256: str | None = None

    def hides(self, sha256: str, last_modified: float | None) -> bool:
        """True if an object with these bytes and this mtime is what the delete removed."""
        if self.deleted_at is None or self.sha256 != sha256:
            return False
        return last_modified is None or last_modified <= (
            self.deleted_at + DELETE_CLOCK_SLACK_SECONDS
        )


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """One project on the root page (frozen: a catalog may hand out the same ones again)."""

    name: str  # normalized
    display_name: str
    last_modified: float
    file_count: int = 0
    summary: str | None = None  # of the most recently uploaded file


# What a credential may do. A password carries every capability; an API token carries a
# subset (``stratus.app.tokens``). Capabilities never add to what the user may do.
READ_CAP = "read"  # read (install) what the user may read
UPLOAD_CAP = "upload"  # upload what the user may write (within the token's projects)
MANAGE_CAP = "manage"  # manage the user's own API tokens and password
ADMIN_CAP = "admin"  # use admin powers (admin API, others' tokens), if the user is an admin
CAPABILITIES = frozenset({READ_CAP, UPLOAD_CAP, MANAGE_CAP, ADMIN_CAP})


@dataclass(slots=True)
class Identity:
    """Who makes a request, and what the credential used allows. ``username`` None: anonymous.

    ``is_admin`` says whether *this credential* may use admin powers: the user is an admin
    and the credential carries ``ADMIN_CAP`` (a password, or an unscoped token made with
    admin rights). ``admin_user`` says whether the user is an admin at all: an admin reads
    and writes every package, also through a token without admin rights (within the token's
    ``upload_scope`` and capabilities).
    """

    username: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False
    # Set when the caller used an API token limited to uploading these (normalized) projects.
    upload_scope: frozenset[str] | None = None
    # A token minted by trusted publishing: may upload to ``upload_scope`` (a grant, not a
    # limit on some user's permissions) and read what anyone may read, nothing else.
    upload_only: bool = False
    capabilities: frozenset[str] = CAPABILITIES
    admin_user: bool = False
    token_id: str | None = None  # the API token used, if any
    expires: float | None = None  # when the credential expires (epoch seconds), None: never

    def __post_init__(self) -> None:
        if self.is_admin:
            self.admin_user = True  # an admin credential is always an admin's

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    def may(self, capability: str) -> bool:
        """Whether the credential carries ``capability`` (one of ``CAPABILITIES``)."""
        return capability in self.capabilities

    @property
    def may_manage(self) -> bool:
        """May manage tokens and the password: authenticated, unscoped, ``MANAGE_CAP``."""
        return self.authenticated and self.upload_scope is None and self.may(MANAGE_CAP)


ANONYMOUS = Identity()
