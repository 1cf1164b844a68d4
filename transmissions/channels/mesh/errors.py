"""MESH's errors: the engine's one hierarchy (``engine.errors``), named for MESH.
Each class says what is safe to do next."""

from __future__ import annotations

from transmissions.engine.errors import (
    ChannelAuthFailed,
    ChannelConfigurationError,
    ChannelError,
    ChannelOutcomeUnknown,
    ChannelRefused,
    ChannelUnavailable,
)


class MeshChannelError(ChannelError):
    """Base class. ``retry_safe`` is True only when sending again cannot duplicate."""

    retry_safe = False
    error_class = "mesh_error"


class MeshUnavailable(MeshChannelError, ChannelUnavailable):
    """The request did not take effect (no connection, 425/429): retry later."""

    retry_safe = True
    error_class = "retryable"


class MeshOutcomeUnknown(MeshChannelError, ChannelOutcomeUnknown):
    """The upload was sent and no usable answer came: MESH may hold the message."""

    error_class = "ambiguous"


class MeshRefused(MeshChannelError, ChannelRefused):
    """MESH refused the request for a reason a retry will not change."""

    error_class = "permanent"

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class MeshNotFound(MeshRefused):
    """404: no such message (tracking) or mailbox."""


class MeshAmbiguousLocalId(MeshRefused):
    """300: more than one message carries the local id."""


class MeshAuthFailed(MeshChannelError, ChannelAuthFailed):
    """MESH refused our mailbox credentials (401 or 403): nothing was accepted, and
    nothing will be until the credentials are fixed. Stop the organisation."""

    error_class = "auth"


class MeshConfigurationError(MeshChannelError, ChannelConfigurationError):
    """The mailbox is configured unsafely or incompletely (secret, TLS files)."""

    error_class = "configuration"


class MeshMalformedAnswer(MeshOutcomeUnknown):
    """The upload got an answer that breaks MESH's contract (no message id, not
    JSON, another content type): MESH may hold the message, so it is settled by
    tracking its local id, never uploaded again blindly."""

    error_class = "malformed"


class MeshMalformedRead(MeshUnavailable):
    """A read (inbox list, message headers, tracking, endpoint look-up) got an
    answer that breaks MESH's contract. Nothing changed: asking again is safe."""

    error_class = "malformed"
