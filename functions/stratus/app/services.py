"""What a running index is made of: the ports it uses, its settings and its secrets.

``stratus.wiring`` builds one per deployment (AWS or local) at start-up; the web app and
the CLI receive it ready-made and never choose or build adapters themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ports import (
    AuditLog,
    Catalog,
    DirectoryBackend,
    JwksSource,
    MetricsSink,
    MintedTokens,
    MutableAccessBackend,
    ReconcileRuns,
    ReplayGuard,
    Storage,
    TokenStore,
    TrustedPublishers,
    UploadSessions,
)
from ..settings import Settings
from .rebuild import RebuildRunner
from .upload_completion import CompletionRunner

if TYPE_CHECKING:
    from .upstream import FallbackServices


@dataclass
class Services:
    catalog: Catalog
    storage: Storage
    access: DirectoryBackend
    settings: Settings
    # Where API tokens live: the access backend when it is mutable, else a store of its own
    # (SQLite locally, the DynamoDB table on AWS) holding tokens of the backend's users.
    tokens: TokenStore | None = None
    signing_key: str | None = None  # signs registration tokens (``auth.signing_key``)
    audit: AuditLog | None = None  # where security-relevant events are recorded
    metrics: MetricsSink | None = None  # business metrics (EMF on Lambda)
    reconcile_runs: ReconcileRuns | None = None  # statuses of background rebuilds
    rebuild: RebuildRunner | None = None  # starts them (``/admin/rebuild/``)
    # Trusted publishing (OIDC): one adapter implements the three stores.
    publishers: TrustedPublishers | None = None
    replay_guard: ReplayGuard | None = None
    minted_tokens: MintedTokens | None = None
    jwks: JwksSource | None = None
    upload_sessions: UploadSessions | None = None  # `stratus upload`'s sessions
    fallback: FallbackServices | None = None  # upstream fallback, origin controls (wiring)
    upload_completions: CompletionRunner | None = None  # completes large ones in the background

    @property
    def mutable_access(self) -> MutableAccessBackend | None:
        return self.access if isinstance(self.access, MutableAccessBackend) else None
