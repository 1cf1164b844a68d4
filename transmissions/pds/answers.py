"""PDS answers as types: the members of a FHIR ``Patient`` and ``OperationOutcome``
that docflow reads, validated by pydantic (through ``transmissions.answers``'s
reader: FHIR JSON is ``application/fhir+json``), and the result the client returns.

Shapes follow the published specification vendored in ``pds-api.yaml``
(``components/schemas/Patient.yaml`` and what it references). Members docflow does
not read (names, addresses, telecom, extensions) are ignored, not kept.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from transmissions.answers import read_json

NhsNumber = Annotated[str, StringConstraints(pattern=r"^\d{10}$")]
OdsCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]+$")]
# DeceasedDateTime.yaml: a UTC date-time or a date; "due to data quality issues on a
# small number of patients yyyy-mm and yyyy format may also be returned".
DeceasedText = Annotated[
    str,
    StringConstraints(
        pattern=r"^[12]\d{3}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
        r"(T\d{2}:\d{2}:\d{2}(\+00:00)?)?)?)?$"
    ),
]
RESTRICTED_CODES = frozenset({"R", "V"})  # restricted, very restricted


class _Member(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Period(_Member):
    start: datetime.date
    end: datetime.date | None = None


class OrganisationIdentifier(_Member):
    value: OdsCode
    period: Period | None = None


class GeneralPractitioner(_Member):
    identifier: OrganisationIdentifier


class SecurityLabel(_Member):
    code: str | None = None


class Meta(_Member):
    versionId: str | None = None
    security: list[SecurityLabel] = Field(default_factory=list, max_length=1)


class Patient(_Member):
    """A FHIR Patient as PDS returns it from ``GET /Patient/{id}``."""

    resourceType: Literal["Patient"] = "Patient"
    id: NhsNumber
    meta: Meta = Field(default_factory=Meta)
    deceasedDateTime: DeceasedText | None = None
    generalPractitioner: list[GeneralPractitioner] = Field(
        default_factory=list, max_length=1
    )


class Coding(_Member):
    code: str | None = None


class ErrorCode(_Member):
    coding: list[Coding] = Field(default_factory=list)


class Issue(_Member):
    severity: str
    code: str
    details: ErrorCode | None = None
    diagnostics: str | None = None


class OperationOutcome(_Member):
    """A FHIR OperationOutcome: why PDS refused or failed a request."""

    resourceType: Literal["OperationOutcome"] = "OperationOutcome"
    issue: list[Issue] = Field(min_length=1)

    @property
    def error_code(self) -> str:
        """The Spine error code of the first issue (``RESOURCE_NOT_FOUND``), or ""."""
        details = self.issue[0].details
        codes = [c.code for c in details.coding if c.code] if details else []
        return codes[0] if codes else ""


@dataclass(frozen=True)
class PatientRecord:
    """What PDS said about one NHS number, in docflow's terms.

    ``nhs_number`` differs from ``requested_nhs_number`` when the requested record
    was superseded (PDS returns the superseding record in its place). A restricted
    record carries no practice (PDS removes it). The practice is the one PDS holds,
    current or not: ``practice_until`` in the past means the registration ended.
    """

    requested_nhs_number: str
    nhs_number: str
    restricted: bool
    deceased: bool
    deceased_on: datetime.date | None
    practice_ods_code: str
    practice_since: datetime.date | None
    practice_until: datetime.date | None
    version_id: str

    @property
    def superseded(self) -> bool:
        return self.nhs_number != self.requested_nhs_number


def _deceased_on(text: str | None) -> datetime.date | None:
    match = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text or "")
    if not match:
        return None
    return datetime.date(*(int(part) for part in match.groups()))


def patient_record(patient: Patient, *, requested_nhs_number: str) -> PatientRecord:
    """The typed result for one validated Patient answer."""
    security = {label.code for label in patient.meta.security if label.code}
    practice = patient.generalPractitioner[0] if patient.generalPractitioner else None
    period = practice.identifier.period if practice else None
    return PatientRecord(
        requested_nhs_number=requested_nhs_number,
        nhs_number=patient.id,
        restricted=bool(security & RESTRICTED_CODES),
        deceased=patient.deceasedDateTime is not None,
        deceased_on=_deceased_on(patient.deceasedDateTime),
        practice_ods_code=practice.identifier.value if practice else "",
        practice_since=period.start if period else None,
        practice_until=period.end if period else None,
        version_id=patient.meta.versionId or "",
    )


def read_patient(
    content: bytes, content_type: str, *, requested_nhs_number: str
) -> PatientRecord:
    """A 200 answer as a ``PatientRecord``; ``AnswerUnreadable`` if it breaks the
    contract."""
    patient = read_json(Patient, content, content_type)
    return patient_record(patient, requested_nhs_number=requested_nhs_number)


def read_outcome(content: bytes, content_type: str) -> OperationOutcome:
    """An error answer as an ``OperationOutcome``; ``AnswerUnreadable`` if not one."""
    return read_json(OperationOutcome, content, content_type)
