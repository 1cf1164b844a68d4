"""One error hierarchy for PDS look-ups: each class says whether asking again is safe.

A look-up is a read: nothing changes at PDS, so every failure that is not PDS's
answer about the patient (unavailable, timed out, throttled, a broken answer) is
safe to retry later.
"""

from __future__ import annotations


class PdsError(Exception):
    """Base class. ``retry_safe``: asking again later may give an answer."""

    retry_safe = False
    kind = "error"


class PdsUnavailable(PdsError):
    """No answer about the patient this time (connection refused, timeout, 408,
    429, 5xx): try again later."""

    retry_safe = True
    kind = "unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PdsTimeout(PdsUnavailable):
    """PDS did not answer within the configured timeout."""

    kind = "timeout"


class PdsMalformedAnswer(PdsUnavailable):
    """An answer that breaks the published contract (not FHIR JSON, members missing
    or wrongly typed, a status the contract does not name). A read changed
    nothing, so asking again is safe; the message names members, never values."""

    kind = "malformed"


class PdsPatientNotFound(PdsError):
    """404 ``RESOURCE_NOT_FOUND``: PDS holds no patient with this NHS number."""

    kind = "not_found"


class PdsPatientInvalidated(PdsPatientNotFound):
    """404 ``INVALIDATED_RESOURCE``: the record existed but was invalidated and not
    superseded by another NHS number."""

    kind = "invalidated"


class PdsInvalidNhsNumber(PdsError):
    """400 ``INVALID_RESOURCE_ID``, or refused before sending: not a valid NHS
    number."""

    kind = "invalid_nhs_number"


class PdsRefused(PdsError):
    """Any other 4xx: the request as made will not succeed if repeated."""

    kind = "refused"

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class PdsAuthFailed(PdsRefused):
    """401/403 ``ACCESS_DENIED``: the access token is missing, invalid or expired, or
    the application is not allowed this operation."""

    kind = "auth"


class PdsConfigurationError(PdsError):
    """The client is configured unsafely (plain HTTP to a remote host, no URL)."""

    kind = "configuration"
