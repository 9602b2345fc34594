"""Domain errors; the web layer maps each to an HTTP status."""


class StratusError(Exception):
    """Base of errors that carry a message meant for the client."""


class InvalidInput(StratusError):
    """The request is malformed (HTTP 400)."""


class Conflict(StratusError):
    """The resource exists already (HTTP 409)."""


class NotFound(StratusError):
    """The resource does not exist (HTTP 404)."""


class BackendUnavailable(StratusError):
    """A backend (catalog, storage, access) failed its health check (HTTP 503)."""


class PermissionDenied(StratusError):
    """The caller is not allowed this (HTTP 403): its credential does not allow it, or the
    action is refused for this resource whoever asks, e.g. an upload of a name whose origin
    controls block publishing."""


class UpstreamError(StratusError):
    """The upstream index cannot give what is needed right now (HTTP 502)."""
