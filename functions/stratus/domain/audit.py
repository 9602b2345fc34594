"""Audit records: one per security-relevant event (who, from where, what, result).

Plain data, serialized as one JSON object per line locally and per log event on AWS.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# The actions Stratus records; anything else is a programming error.
ACTIONS = frozenset(
    {
        "upload",
        "overwrite",
        "delete",
        "yank",
        "unyank",
        "user_create",
        "user_delete",
        "user_approve",
        "user_admin",
        "user_group",
        "group_change",
        "permission_change",
        "register_switch",
        "password_change",
        "token_create",
        "token_revoke",
        "oidc_mint",
        "login_failure",
        "throttled",
        "cache_fill",
        "origin_change",
        "rebuild",
    }
)
RESULTS = frozenset({"ok", "denied", "failed"})


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    actor: str | None  # user name; None for anonymous
    source: str | None  # client address
    target: str  # what was acted on: "project/filename", "user:bob", "token:<id>" ...
    result: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")
        if self.result not in RESULTS:
            raise ValueError(f"unknown audit result {self.result!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, line: str) -> AuditEvent:
        data = json.loads(line)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
