"""The dependency-confusion guard: private names and per-project origin controls.

- ``pypi.private_projects`` (glob patterns of normalized names): those names never fall
  back to the upstream and never show upstream files, whatever is stored.
- Per project ``{"upstream", "publish"}`` (``domain.origins``), set by admins, or with
  ``pypi.origin_lock`` by the first origin: the first local upload of a name blocks the
  upstream for it; the first cache fill blocks publishing it. Projects stored before the
  lock was turned on get theirs from the files they hold (any uploaded file: local).
"""

from __future__ import annotations

from ..domain import fallback, origins
from ..domain.errors import PermissionDenied
from ..domain.origins import LOCKED_BY_FILL, LOCKED_BY_UPLOAD, OriginControls
from ..ports import Catalog, OriginStore


class OriginPolicy:
    def __init__(
        self,
        store: OriginStore,
        catalog: Catalog,
        *,
        private_patterns: tuple[str, ...] = (),
        origin_lock: bool = False,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.private_patterns = private_patterns
        self.origin_lock = origin_lock

    def is_private(self, project: str) -> bool:
        return fallback.is_private(project, self.private_patterns)

    def controls(self, project: str) -> OriginControls | None:
        return self.store.get(project)

    def set_controls(self, project: str, controls: OriginControls) -> OriginControls:
        self.store.put(project, controls)
        return controls

    def upstream_allowed(self, project: str) -> bool:
        """May this name show upstream files, fall back, be cache-filled?"""
        if self.is_private(project):
            return False
        controls = self.store.get(project)
        return controls is None or controls.upstream_allowed

    def _first_origin(self, project: str, otherwise: OriginControls) -> OriginControls:
        """The lock a project's stored files imply (uploaded: local), else ``otherwise``."""
        files = self.catalog.list_files(project)
        if not files:
            return otherwise
        if any(not fallback.is_from_upstream(f.uploader) for f in files):
            return LOCKED_BY_UPLOAD
        return LOCKED_BY_FILL

    def check_publish(self, project: str) -> None:
        """Before an upload stores anything (``Publisher``'s guard). 403 when blocked."""
        controls = self.store.get(project)
        if controls is None and self.origin_lock and not self.is_private(project):
            controls = self.store.claim(project, self._first_origin(project, LOCKED_BY_UPLOAD))
        if controls is not None and not controls.publish_allowed:
            raise PermissionDenied(origins.publish_blocked_message(project))

    def check_fill(self, project: str) -> None:
        """Before a cache fill stores anything. 403 when the upstream is blocked."""
        if self.is_private(project):
            raise PermissionDenied(origins.upstream_blocked_message(project))
        controls = self.store.get(project)
        if controls is None and self.origin_lock:
            controls = self.store.claim(project, self._first_origin(project, LOCKED_BY_FILL))
        if controls is not None and not controls.upstream_allowed:
            raise PermissionDenied(origins.upstream_blocked_message(project))
