"""Everything about Connect that is assumed rather than published, in one place.

Paths, the token flow, sub-object member names, the change feed and the shapes of
status answers are marked ``x-assumed`` in shared/connect-api.yaml. When the live
service differs, this module changes and nothing else does.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path, not a secret)
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


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_status(data: dict[str, Any]) -> DocumentStatus:
    rejection = data.get("Rejection")
    return DocumentStatus(
        guid=str(data["DocumentGuid"]),
        status_code=int(data["StatusCode"]),
        description=str(data.get("StatusDescription", "")),
        updated_at=_when(data.get("StatusUpdated")),
        recipient_ods_code=str(data.get("RecipientOdsCode") or ""),
        rejection=Rejection(
            code=str(rejection.get("Code", "")),
            reason=str(rejection.get("Reason", "")),
            rejected_at=_when(rejection.get("RejectedAt")),
        )
        if isinstance(rejection, dict)
        else None,
        resend_of=data.get("ResendOf"),
        idempotency_key=str(data.get("IdempotencyKey") or ""),
    )


def parse_changes(data: dict[str, Any]) -> ChangesPage:
    return ChangesPage(
        changes=[parse_status(item) for item in data.get("Changes", [])],
        next_cursor=str(data.get("NextCursor", "")),
    )


def parse_found(data: dict[str, Any]) -> DocumentStatus | None:
    documents = data.get("Documents") or []
    return parse_status(documents[0]) if documents else None


# Connect's endpoint type names -> our DestinationProfile.endpoint_type codes.
ENDPOINT_TYPES = {
    "Docman10": "docman10",
    "Docman7": "docman7",
    "EmisMesh": "emis_mesh",
    "TppMesh": "tpp_mesh",
}


def parse_organisation(data: dict[str, Any]) -> ConnectOrganisation:
    endpoint_type = str(data.get("EndpointType", ""))
    return ConnectOrganisation(
        ods_code=str(data["OdsCode"]),
        name=str(data.get("Name", "")),
        is_active=bool(data["IsActive"]),
        is_receiving=bool(data["IsReceivingOrganisation"]),
        # An unknown name passes through: no profile matches it, so nothing is sent.
        endpoint_type=ENDPOINT_TYPES.get(endpoint_type, endpoint_type),
        max_file_size_bytes=data.get("MaxFileSizeBytes"),
    )


def parse_token(data: dict[str, Any]) -> Token:
    return Token(
        access_token=str(data["access_token"]), expires_in=int(data["expires_in"])
    )


def parse_validation_codes(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    return [
        str(item.get("Code"))
        for item in data.get("ValidationErrors", [])
        if isinstance(item, dict) and item.get("Code")
    ]
