"""Origin controls (CodeArtifact's package origin controls, per project).

``upstream``: may files of this name come from the upstream (shown on pages, cache-filled)?
``publish``: may files of this name be uploaded here? With ``pypi.origin_lock`` the first
origin sets them: a first local upload blocks the upstream for that name, a first cache
fill blocks publishing it. Admins read and change them at ``/admin/package/<p>/origin/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidInput

ALLOW = "allow"
BLOCK = "block"
_VALUES = (ALLOW, BLOCK)

# Who set the controls (kept with them, shown to admins).
SET_BY_ADMIN = "admin"
SET_BY_UPLOAD = "first-upload"  # origin lock: the first file was uploaded here
SET_BY_FILL = "first-cache-fill"  # origin lock: the first file came from the upstream


@dataclass(frozen=True, slots=True)
class OriginControls:
    upstream: str = ALLOW
    publish: str = ALLOW
    set_by: str = SET_BY_ADMIN

    def __post_init__(self) -> None:
        if self.upstream not in _VALUES or self.publish not in _VALUES:
            raise InvalidInput('origin controls are "allow" or "block"')

    @property
    def upstream_allowed(self) -> bool:
        return self.upstream == ALLOW

    @property
    def publish_allowed(self) -> bool:
        return self.publish == ALLOW

    def as_dict(self) -> dict[str, str]:
        return {"upstream": self.upstream, "publish": self.publish, "set_by": self.set_by}


LOCKED_BY_UPLOAD = OriginControls(upstream=BLOCK, publish=ALLOW, set_by=SET_BY_UPLOAD)
LOCKED_BY_FILL = OriginControls(upstream=ALLOW, publish=BLOCK, set_by=SET_BY_FILL)


def from_request(body: object, current: OriginControls | None) -> OriginControls:
    """An admin's ``{"upstream": ..., "publish": ...}`` (either may be left out)."""
    if not isinstance(body, Mapping) or not set(body) <= {"upstream", "publish"} or not body:
        raise InvalidInput('send {"upstream": "allow"|"block", "publish": "allow"|"block"}')
    base = current or OriginControls()
    values = {k: body.get(k, getattr(base, k)) for k in ("upstream", "publish")}
    if not all(isinstance(v, str) for v in values.values()):
        raise InvalidInput('origin controls are "allow" or "block"')
    return OriginControls(upstream=values["upstream"], publish=values["publish"])


def publish_blocked_message(project: str) -> str:
    return (
        f"Publishing {project!r} is blocked by its origin controls: its files come from the "
        "upstream index (the first file of this name was cached from there, so an upload "
        "could shadow it). An admin can allow uploads with "
        f'PUT /admin/package/{project}/origin/ {{"publish": "allow"}}.'
    )


def upstream_blocked_message(project: str) -> str:
    return (
        f"{project!r} does not come from the upstream index: its origin controls block it "
        "(a private name, or published here first). An admin can change this with "
        f'PUT /admin/package/{project}/origin/ {{"upstream": "allow"}}.'
    )
