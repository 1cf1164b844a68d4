"""HTTP to PDS: ``GET /Patient/{id}``, verified TLS, one timeout, typed results.

Request headers are the published specification's: ``X-Request-ID`` (a new UUID
for each look-up), ``X-Correlation-ID`` when the caller has one, ``Authorization:
Bearer`` from :class:`PdsCredentials`. Every answer is classified by status, then
validated into its type by ``transmissions.pds.answers``; nothing but a
``PatientRecord`` or a ``PdsError`` leaves :meth:`PdsClient.patient_get`. No NHS
number is ever logged or put in an error message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import nhs_number as nhs_numbers
from django.conf import settings

from transmissions.answers import AnswerUnreadable
from transmissions.outside import base_url_checked, retry_after_seconds
from transmissions.pds.answers import PatientRecord, read_outcome, read_patient
from transmissions.pds.errors import (
    PdsAuthFailed,
    PdsConfigurationError,
    PdsError,
    PdsInvalidNhsNumber,
    PdsMalformedAnswer,
    PdsPatientInvalidated,
    PdsPatientNotFound,
    PdsRefused,
    PdsTimeout,
    PdsUnavailable,
)

RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class PdsCredentials:
    """The one place docflow's assumptions about PDS access live.

    docflow assumes a ready-made OAuth 2.0 access token, given by the
    environment (``DOCFLOW_PDS_ACCESS_TOKEN``); with none, no ``Authorization``
    header is sent, as the PDS sandbox and the simulator accept. The live service's
    application-restricted flow (a signed JWT exchanged for a token) or
    healthcare-worker flow (NHS CIS2) is not implemented here: it belongs in this
    class, and nothing else needs to change.
    """

    access_token: str = ""
    end_user_ods_code: str = ""

    @classmethod
    def from_settings(cls) -> PdsCredentials:
        return cls(
            access_token=getattr(settings, "DOCFLOW_PDS_ACCESS_TOKEN", ""),
            end_user_ods_code=getattr(settings, "DOCFLOW_PDS_END_USER_ODS_CODE", ""),
        )

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        if self.end_user_ods_code:
            headers["NHSD-End-User-Organisation-ODS"] = self.end_user_ods_code
        return headers


def pds_base_url_check(base_url: str) -> str:
    """HTTPS everywhere; plain HTTP only to this machine (the simulator)."""
    return base_url_checked(base_url, service="PDS", error=PdsConfigurationError)


class PdsClient:
    """Looks patients up on PDS. Returns ``PatientRecord``; raises ``PdsError``."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 10.0,
        credentials: PdsCredentials | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = pds_base_url_check(base_url)
        self._credentials = credentials or PdsCredentials()
        self._http = http or httpx.Client(timeout=timeout, verify=True)

    @classmethod
    def from_settings(cls) -> PdsClient:
        """The client ``DOCFLOW_PDS_BASE_URL`` and ``DOCFLOW_PDS_TIMEOUT`` describe."""
        return cls(
            base_url=settings.DOCFLOW_PDS_BASE_URL,
            timeout=settings.DOCFLOW_PDS_TIMEOUT,
            credentials=PdsCredentials.from_settings(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PdsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def patient_get(
        self, *, nhs_number: str, correlation_id: str = ""
    ) -> PatientRecord:
        """What PDS holds for ``nhs_number`` (the superseding record if it was
        superseded). Refuses an invalid NHS number without asking PDS."""
        if not (
            isinstance(nhs_number, str)
            and len(nhs_number) == 10
            and nhs_number.isdigit()
            and nhs_numbers.is_valid(nhs_number)
        ):
            raise PdsInvalidNhsNumber("Not a valid NHS number; PDS was not asked.")
        headers = {
            "Accept": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
            **self._credentials.headers(),
        }
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id
        url = f"{self.base_url}/Patient/{quote(nhs_number, safe='')}"
        try:
            response = self._http.get(url, headers=headers)
        except httpx.TimeoutException:
            raise PdsTimeout("PDS did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise PdsUnavailable(
                f"PDS could not be reached ({type(exc).__name__})."
            ) from None
        return answer_read(response, requested_nhs_number=nhs_number)


def answer_read(
    response: httpx.Response, *, requested_nhs_number: str
) -> PatientRecord:
    """One PDS answer to ``GET /Patient/{id}``: the record, or the ``PdsError``
    its status and Spine error code mean."""
    status = response.status_code
    content_type = response.headers.get("Content-Type", "")
    if status == 200:
        try:
            return read_patient(
                response.content,
                content_type,
                requested_nhs_number=requested_nhs_number,
            )
        except AnswerUnreadable as exc:
            raise PdsMalformedAnswer(f"PDS answer unreadable: {exc}") from None
    if status >= 500 or status in RETRYABLE_STATUSES:
        raise PdsUnavailable(
            f"PDS answered {status}; try again later.",
            retry_after=retry_after_seconds(response),
        )
    if 400 <= status < 500:
        raise _refusal(status, response.content, content_type)
    raise PdsMalformedAnswer(f"PDS answered {status}, which the contract omits.")


def _refusal(status: int, content: bytes, content_type: str) -> PdsError:
    try:
        code = read_outcome(content, content_type).error_code
    except AnswerUnreadable as exc:
        return PdsMalformedAnswer(f"PDS {status} answer unreadable: {exc}")
    if status == 404 and code == "INVALIDATED_RESOURCE":
        return PdsPatientInvalidated(
            "PDS: this NHS number was invalidated and not superseded."
        )
    if status == 404:
        return PdsPatientNotFound("PDS holds no patient with this NHS number.")
    if status == 400 and code == "INVALID_RESOURCE_ID":
        return PdsInvalidNhsNumber("PDS: not a valid NHS number.")
    if status in (401, 403):
        return PdsAuthFailed(f"PDS refused access ({code or status}).", code=code)
    return PdsRefused(f"PDS refused the request ({code or status}).", code=code)
