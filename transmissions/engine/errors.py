"""One error hierarchy for every channel: each class says what is safe to do next.

A channel's client raises its own subclasses (``ConnectError``, ``MeshChannelError``)
that also derive from one of the kinds here, so the engine reads any channel's
failure the same way: ``retry_safe`` says whether sending again cannot duplicate,
and the kind says what the engine does (retry with backoff, settle by key, hold,
halt the organisation).
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base class. ``retry_safe`` is True only when sending again cannot duplicate."""

    retry_safe = False
    error_class = "channel_error"


class ChannelUnavailable(ChannelError):
    """The request did not take effect (no connection, 429, 5xx): retry later, not
    sooner than ``retry_after`` seconds when the channel said so."""

    retry_safe = True
    error_class = "retryable"

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChannelOutcomeUnknown(ChannelError):
    """The request was sent and no usable answer came: it may have taken effect, so
    it is settled by its key, never sent again blindly."""

    error_class = "ambiguous"


class ChannelRefused(ChannelError):
    """The channel refused the request for a reason a retry will not change."""

    error_class = "permanent"


class ChannelAuthFailed(ChannelError):
    """Our credentials were refused: nothing was accepted, and nothing will be until
    they are fixed. The engine halts the sending organisation."""

    error_class = "auth"


class ChannelConfigurationError(ChannelError):
    """The client is configured unsafely or incompletely (secret, TLS files, plain
    HTTP to a remote host)."""

    error_class = "configuration"
