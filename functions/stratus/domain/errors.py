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


class NotPermitted(StratusError):
    """The action is refused for this resource whoever asks (HTTP 403), e.g. an upload of a
    name whose origin controls block publishing."""


class UpstreamError(StratusError):
    """The upstream index cannot give what is needed right now (HTTP 502)."""
