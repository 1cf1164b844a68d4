"""Connect's errors: the engine's one hierarchy (``engine.errors``), named for
Connect. Each class says what is safe to do next."""

from __future__ import annotations

from transmissions.engine.errors import (
    ChannelAuthFailed,
    ChannelConfigurationError,
    ChannelError,
    ChannelOutcomeUnknown,
    ChannelRefused,
    ChannelUnavailable,
)


class ConnectError(ChannelError):
    """Base class. ``retry_safe`` is True only when resending cannot duplicate."""

    retry_safe = False
    error_class = "connect_error"


class ConnectUnavailable(ConnectError, ChannelUnavailable):
    """The request did not take effect (connection refused, 429, 5xx): retry later."""

    retry_safe = True
    error_class = "retryable"


class ConnectOutcomeUnknown(ConnectError, ChannelOutcomeUnknown):
    """The request was sent and no answer came: it may have taken effect."""

    error_class = "ambiguous"


class ConnectRefused(ConnectError, ChannelRefused):
    """Connect refused the request for a reason a retry will not change."""

    error_class = "permanent"

    def __init__(self, message: str, *, codes: list[str] | None = None) -> None:
        super().__init__(message)
        self.codes = codes or []


class ConnectConflict(ConnectRefused):
    """409: the idempotency key was reused, or the document is in the wrong state."""


class ConnectNotFound(ConnectRefused):
    """404: no such document or organisation."""


class ConnectAuthFailed(ConnectError, ChannelAuthFailed):
    """No valid credentials: stop outbound for this sending organisation."""

    error_class = "auth"


class ConnectConfigurationError(ConnectError, ChannelConfigurationError):
    """The client is configured unsafely (e.g. plain HTTP to a remote host)."""

    error_class = "configuration"


class ConnectMalformedAnswer(ConnectOutcomeUnknown):
    """A request that may have taken effect (a POST) got an answer that breaks the
    contract: missing or wrongly typed members, not JSON, another content type, a
    status code we do not know, a cut-off body. Connect may hold what we sent, so
    it is settled by idempotency key, never sent again blindly."""

    error_class = "malformed"


class ConnectMalformedRead(ConnectUnavailable):
    """A read (a GET, or the token request) got an answer that breaks the contract.
    Nothing changed at Connect: asking again later is safe."""

    error_class = "malformed"
