"""PDS as casework's patient look-up: registered by ``TransmissionsConfig.ready``.

Translates the client's ``PatientRecord`` and ``PdsError`` into casework's
``PatientLookupAnswer`` and ``PatientLookupFailed``, so casework never imports
transmissions.
"""

from __future__ import annotations

from casework.patient_lookup import PatientLookupAnswer, PatientLookupFailed
from casework.patient_traces import PatientTraceOutcome
from transmissions.pds.client import PdsClient
from transmissions.pds.errors import (
    PdsError,
    PdsInvalidNhsNumber,
    PdsPatientInvalidated,
    PdsPatientNotFound,
    PdsUnavailable,
)


def _outcome(error: PdsError) -> str:
    if isinstance(error, PdsPatientInvalidated):
        return PatientTraceOutcome.INVALIDATED
    if isinstance(error, PdsPatientNotFound):
        return PatientTraceOutcome.NOT_FOUND
    if isinstance(error, PdsInvalidNhsNumber):
        return PatientTraceOutcome.INVALID_NHS_NUMBER
    if isinstance(error, PdsUnavailable):
        return PatientTraceOutcome.UNAVAILABLE
    return PatientTraceOutcome.FAILED


def pds_patient_lookup(*, nhs_number: str, correlation_id: str) -> PatientLookupAnswer:
    """Ask PDS (``DOCFLOW_PDS_BASE_URL``) for the patient's record."""
    try:
        with PdsClient.from_settings() as client:
            record = client.patient_get(
                nhs_number=nhs_number, correlation_id=correlation_id
            )
    except PdsError as error:
        raise PatientLookupFailed(
            str(error), outcome=_outcome(error), retry_safe=error.retry_safe
        ) from None
    return PatientLookupAnswer(
        practice_ods_code=record.practice_ods_code,
        practice_since=record.practice_since,
        practice_until=record.practice_until,
        deceased=record.deceased,
        deceased_on=record.deceased_on,
        restricted=record.restricted,
        superseded=record.superseded,
    )
