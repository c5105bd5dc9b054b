"""Errors users can act on. Front doors print ``str(error)`` as one line (CLI) or wrap it in an
OpenAI error object (HTTP); anything else escaping is a bug."""


class MuseError(Exception):
    """Base of every error OpenMuse reports to a user."""

    code = "muse_error"


class ConfigError(MuseError):
    """Bad options: unknown mode or engine, budget < 1, empty question."""

    code = "invalid_request_error"


class ModelNotFound(MuseError):
    code = "model_not_found"


class EngineUnavailable(MuseError):
    """The engine cannot be reached or refused the request."""

    code = "engine_unavailable"


class ContextOverflow(MuseError):
    code = "context_length_exceeded"


class OptionError(ConfigError):
    """An option a mode does not take, or a bad value for one; ``field`` names it."""

    def __init__(self, message: str, field: str, unknown: bool = False):
        super().__init__(message)
        self.field, self.unknown = field, unknown


class MediaError(ConfigError):
    """A media part that cannot be used: its message names the part (``image 1 (sign.png): …``)."""

    code = "invalid_media"


class EngineBusy(MuseError):
    """The engine's queue is full past the request's deadline (HTTP 503: try again later)."""

    code = "engine_overloaded"


class Cancelled(MuseError):
    """The request was cancelled (its client went away or pressed stop)."""

    code = "request_cancelled"


class RequestTooLarge(ConfigError):
    """One request asks for more engine work than its share (agents × tokens)."""

    code = "request_too_large"
