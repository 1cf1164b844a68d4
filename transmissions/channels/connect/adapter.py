"""Everything about Connect that is assumed rather than published, in one place.

Paths, the token flow, sub-object member names, the change feed and the shapes of
status answers are marked ``x-assumed`` in shared/connect-api.yaml. When the live
service differs, this module changes and nothing else does.

Every answer is validated with pydantic into a model of its contract shape before
anything reads it; one that does not fit raises ``AnswerUnreadable``, which the
client turns into a typed error saying whether a retry is safe.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from transmissions.answers import AnswerUnreadable, read_json

TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path, not a secret)
PASSWORD_TOKEN_PATH = "/token"  # noqa: S105 (a path, not a secret)
TOKEN_GRANTS = ("client_credentials", "password")
DOCUMENTS_PATH = "/api/documents"
CHANGES_PATH = "/api/documents/changes"
CAPTURE_SOURCE_CONNECT = 2


def organisation_path(ods_code: str) -> str:
    return f"/api/organisations/{ods_code}"


def document_path(guid: str) -> str:
    return f"{DOCUMENTS_PATH}/{guid}"


def resend_path(guid: str) -> str:
    return f"{DOCUMENTS_PATH}/{guid}/resend"


def resolve_path(guid: str) -> str:
    return f"{DOCUMENTS_PATH}/{guid}/resolve"


@dataclass(frozen=True)
class Rejection:
    code: str
    reason: str
    rejected_at: datetime | None


@dataclass(frozen=True)
class DocumentStatus:
    """What Connect says about one document."""

    guid: str
    status_code: int
    description: str
    updated_at: datetime
    recipient_ods_code: str = ""
    rejection: Rejection | None = None
    resend_of: str | None = None
    idempotency_key: str = ""


@dataclass(frozen=True)
class ChangesPage:
    changes: list[DocumentStatus]
    next_cursor: str


@dataclass(frozen=True)
class ConnectOrganisation:
    ods_code: str
    name: str
    is_active: bool
    is_receiving: bool
    endpoint_type: str
    max_file_size_bytes: int | None


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class OutboundDocument:
    """What we send, independent of Connect's member names."""

    sender_ods_code: str
    sender_organisation: str
    sender_department: str
    sender_person: str
    recipient_ods_code: str
    nhs_number: str
    family_name: str
    given_names: str
    birth_date: date
    gender: str
    file_extension: str
    content: bytes
    description: str
    event_date: date
    folder_name: str = ""
    notes: str = ""
    mrn: str = ""
    urgent: bool = False
    action_required: bool = False
    medication_changed: bool = False
    inpatient: bool = False
    revision: bool = False

    def __repr__(self) -> str:  # never show patient details in tracebacks
        return f"OutboundDocument(recipient={self.recipient_ods_code!r})"


def _optional(value: str) -> str | None:
    return value or None


def inbound_document_body(document: OutboundDocument) -> dict[str, Any]:
    """Docman's Inbound Document Model (sub-object member names assumed)."""
    sender = {
        "OdsCode": document.sender_ods_code,
        "Organisation": _optional(document.sender_organisation),
        "Department": _optional(document.sender_department),
        "Person": _optional(document.sender_person),
    }
    patient = {
        "NhsNumber": document.nhs_number,
        "FamilyName": document.family_name,
        "GivenNames": _optional(document.given_names),
        "BirthDate": document.birth_date.isoformat(),
        "Gender": _optional(document.gender),
    }
    body = {
        "CaptureSource": CAPTURE_SOURCE_CONNECT,
        "Sender": {k: v for k, v in sender.items() if v is not None},
        "RecipientOdsCode": document.recipient_ods_code,
        "Patient": {k: v for k, v in patient.items() if v is not None},
        "Document": {
            "FileExtension": document.file_extension,
            "FileContent": base64.b64encode(document.content).decode("ascii"),
            "FileHash": hashlib.sha256(document.content).hexdigest(),
            "Description": document.description,
            "EventDate": document.event_date.isoformat(),
            **({"FolderName": document.folder_name} if document.folder_name else {}),
        },
        "ActionRequired": document.action_required,
        "MedicationChanged": document.medication_changed,
        "Urgent": document.urgent,
        "Revision": document.revision,
        "Inpatient": document.inpatient,
    }
    if document.notes:
        body["Notes"] = document.notes
    if document.mrn:
        body["MRNNumber"] = document.mrn
    return body


# Answers: every body Connect sends back is validated into one of these models
# (strict types, JSON parsed by pydantic), then handed on as the frozen dataclasses
# above, so nothing outside this module sees a member name.


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class _RejectionAnswer(_Answer):
    code: str = Field("", alias="Code")
    reason: str = Field("", alias="Reason")
    rejected_at: AwareDatetime | None = Field(None, alias="RejectedAt")


class _StatusAnswer(_Answer):
    guid: UUID = Field(alias="DocumentGuid")
    status_code: Literal[4002, 4003, 4010, 4005, 6000, 5000, 7000] = Field(
        alias="StatusCode"
    )
    description: str = Field(alias="StatusDescription")
    updated_at: AwareDatetime = Field(alias="StatusUpdated")
    recipient_ods_code: str | None = Field(None, alias="RecipientOdsCode")
    rejection: _RejectionAnswer | None = Field(None, alias="Rejection")
    resend_of: UUID | None = Field(None, alias="ResendOf")
    idempotency_key: str | None = Field(None, alias="IdempotencyKey")

    def as_status(self) -> DocumentStatus:
        rejection = self.rejection
        return DocumentStatus(
            guid=str(self.guid),
            status_code=self.status_code,
            description=self.description,
            updated_at=self.updated_at,
            recipient_ods_code=self.recipient_ods_code or "",
            rejection=Rejection(
                code=rejection.code,
                reason=rejection.reason,
                rejected_at=rejection.rejected_at,
            )
            if rejection is not None
            else None,
            resend_of=str(self.resend_of) if self.resend_of else None,
            idempotency_key=self.idempotency_key or "",
        )


class _ChangesAnswer(_Answer):
    changes: list[_StatusAnswer] = Field(alias="Changes")
    next_cursor: str = Field(alias="NextCursor")


class _FoundAnswer(_Answer):
    documents: list[_StatusAnswer] = Field(alias="Documents")


class _OrganisationAnswer(_Answer):
    ods_code: str = Field(alias="OdsCode")
    name: str = Field(alias="Name")
    is_active: bool = Field(alias="IsActive")
    is_receiving: bool = Field(alias="IsReceivingOrganisation")
    endpoint_type: str = Field(alias="EndpointType")
    max_file_size_bytes: int | None = Field(None, alias="MaxFileSizeBytes", ge=0)


class _TokenAnswer(_Answer):
    access_token: str = Field(min_length=1)
    expires_in: int = Field(gt=0)


class _ValidationItem(BaseModel):
    code: str = Field("", alias="Code")


class _ValidationAnswer(BaseModel):
    errors: list[_ValidationItem] = Field(alias="ValidationErrors")


def parse_status(content: bytes, content_type: str) -> DocumentStatus:
    """One DocumentStatus answer (POST, GET by GUID, resend, resolve)."""
    return read_json(_StatusAnswer, content, content_type).as_status()


def parse_changes(content: bytes, content_type: str) -> ChangesPage:
    answer = read_json(_ChangesAnswer, content, content_type)
    return ChangesPage(
        changes=[item.as_status() for item in answer.changes],
        next_cursor=answer.next_cursor,
    )


def parse_found(content: bytes, content_type: str) -> DocumentStatus | None:
    """The document Connect holds for an idempotency key (at most one), or None."""
    documents = read_json(_FoundAnswer, content, content_type).documents
    if len(documents) > 1:
        raise AnswerUnreadable("Documents: more than one for one idempotency key")
    return documents[0].as_status() if documents else None


# Connect's endpoint type names -> our DestinationProfile.endpoint_type codes.
ENDPOINT_TYPES = {
    "Docman10": "docman10",
    "Docman7": "docman7",
    "EmisMesh": "emis_mesh",
    "TppMesh": "tpp_mesh",
}


def parse_organisation(content: bytes, content_type: str) -> ConnectOrganisation:
    answer = read_json(_OrganisationAnswer, content, content_type)
    return ConnectOrganisation(
        ods_code=answer.ods_code,
        name=answer.name,
        is_active=answer.is_active,
        is_receiving=answer.is_receiving,
        # An unknown name passes through: no profile matches it, so nothing is sent.
        endpoint_type=ENDPOINT_TYPES.get(answer.endpoint_type, answer.endpoint_type),
        max_file_size_bytes=answer.max_file_size_bytes,
    )


def token_request(*, grant: str, client_id: str, secret: str) -> tuple[str, dict]:
    """The token endpoint's path and form for ``grant`` (the setting
    DOCFLOW_CONNECT_TOKEN_GRANT): OAuth client credentials at /oauth2/token, as the
    contract assumes, or the OAuth password grant at /token, as the one public
    imitation of Connect (docman-fake) serves it."""
    if grant == "client_credentials":
        return TOKEN_PATH, {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        }
    if grant == "password":
        return PASSWORD_TOKEN_PATH, {
            "grant_type": "password",
            "username": client_id,
            "password": secret,
        }
    raise ValueError(f"Unknown Connect token grant {grant!r}: one of {TOKEN_GRANTS}.")


def parse_token(content: bytes, content_type: str) -> Token:
    answer = read_json(_TokenAnswer, content, content_type)
    return Token(access_token=answer.access_token, expires_in=answer.expires_in)


def parse_validation_codes(content: bytes) -> list[str]:
    """DC01.xx/DC02/DC03 codes of a 400; a 400 we cannot read is still a refusal,
    so an unreadable body gives no codes rather than an error."""
    try:
        answer = _ValidationAnswer.model_validate_json(content)
    except ValidationError:
        return []
    return [item.code for item in answer.errors if item.code]
