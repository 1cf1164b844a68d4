"""The ITK3 pieces shared by what we send over MESH and the responses that come back.

What we send is built in ``conformance.send_document`` (the GP Connect Send
Document message: a MessageHeader whose id is our transmission's public id, so
every response names the send it answers, with ITK3 handling flags asking for
both acknowledgements, focusing a Document Bundle). This module holds the ITK3
codes and systems, finds a message's MessageHeader id, writes responses (the
demo practice and the tests answer with them) and reads the responses that come
back. A response carries ``MessageHeader.response`` (identifier = the id of the
message it answers, code ``ok`` or ``fatal-error``) and an OperationOutcome whose
coding is an ITK3 response code: 20013 (infrastructure acknowledgement), 30001 to
30003 (business acknowledgement), or one of the 1000x/2000x errors.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transmissions.answers import problems

MESSAGE_DEFINITION = (
    "https://fhir.nhs.uk/STU3/MessageDefinition/"
    "ITK-GPConnectSendDocument-MessageDefinition-1"
)
RESPONSE_CODE_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1"
HANDLING_EXTENSION = (
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2"
)
EVENT_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"
SEND_EVENT = "ITK007C"
RESPONSE_EVENT = "ITK008M"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
UNREADABLE = "UNREADABLE-IN-ORIGINAL-MESSAGE"

INFRASTRUCTURE_OK = "20013"
PATIENT_KNOWN = "30001"
PATIENT_NOT_KNOWN = "30002"
PATIENT_NO_LONGER_HERE = "30003"
POSITIVE_CODES = frozenset({INFRASTRUCTURE_OK, PATIENT_KNOWN})
BUSINESS_CODES = frozenset({PATIENT_KNOWN, PATIENT_NOT_KNOWN, PATIENT_NO_LONGER_HERE})

DESCRIPTIONS = {
    "20007": "Duplicate message",
    "20008": "Duplicate document",
    INFRASTRUCTURE_OK: "Message received and processed",
    PATIENT_KNOWN: "Patient known here",
    PATIENT_NOT_KNOWN: "Patient not known here",
    PATIENT_NO_LONGER_HERE: "Patient no longer at this clinical setting",
}


@dataclass(frozen=True)
class Itk3Response:
    """One ITK3 acknowledgement, as far as it could be read."""

    response_to: str
    code: str
    response_code: str
    description: str = ""

    @property
    def is_business(self) -> bool:
        return self.code in BUSINESS_CODES

    @property
    def is_positive(self) -> bool:
        return self.code in POSITIVE_CODES and self.response_code == "ok"


class Itk3Unreadable(ValueError):
    """The message is not an ITK3 response we can read."""


def _handling(*, inf_ack: bool, bus_ack: bool, sender_reference: str) -> list[dict]:
    values = [
        ("HandlingSpecification", "urn:nhs:itk:ns:201005:HandlingSpecification"),
        ("BusAckRequested", "true" if bus_ack else "false"),
        ("InfAckRequested", "true" if inf_ack else "false"),
        ("RecipientType", "FA"),
        ("MessageDefinition", MESSAGE_DEFINITION),
        ("SenderReference", sender_reference),
        ("LocalExtension", "None"),
    ]
    return [
        {
            "url": HANDLING_EXTENSION,
            "extension": [
                {"url": key, "valueString": value}
                if key != "MessageDefinition"
                else {"url": key, "valueReference": {"reference": value}}
                for key, value in values
            ],
        }
    ]


def message_header_id(content: bytes) -> str:
    """The MessageHeader id of an ITK3 message (what a response must name)."""
    try:
        bundle = json.loads(content)
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "MessageHeader":
                return str(resource["id"])
    except (ValueError, AttributeError, KeyError, TypeError):
        pass
    return UNREADABLE


def response_message(
    *, response_to: str, code: str, sender_mailbox: str, description: str = ""
) -> bytes:
    """An ITK3 response (acknowledgement) to the message ``response_to``."""
    outcome_id = str(uuid.uuid4())
    header_id = str(uuid.uuid4())
    positive = code in POSITIVE_CODES
    header = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "extension": _handling(
            inf_ack=False, bus_ack=False, sender_reference=response_to
        ),
        "event": {"system": EVENT_SYSTEM, "code": RESPONSE_EVENT},
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": {"endpoint": sender_mailbox},
        "response": {
            "identifier": response_to,
            "code": "ok" if positive else "fatal-error",
            "details": {"reference": f"urn:uuid:{outcome_id}"},
        },
    }
    outcome = {
        "resourceType": "OperationOutcome",
        "id": outcome_id,
        "issue": [
            {
                "severity": "information" if positive else "fatal",
                "code": "informational" if positive else "invalid",
                "details": {
                    "coding": [
                        {
                            "system": RESPONSE_CODE_SYSTEM,
                            "code": code,
                            "display": description or DESCRIPTIONS.get(code, ""),
                        }
                    ]
                },
            }
        ],
    }
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "message",
        "entry": [
            {"fullUrl": f"urn:uuid:{header_id}", "resource": header},
            {"fullUrl": f"urn:uuid:{outcome_id}", "resource": outcome},
        ],
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


class _Fhir(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class _Coding(_Fhir):
    system: str = ""
    code: str = ""
    display: str = ""


class _Details(_Fhir):
    coding: list[_Coding] = []


class _Issue(_Fhir):
    details: _Details | None = None


class _Response(_Fhir):
    identifier: str = Field(min_length=1)
    code: Literal["ok", "transient-error", "fatal-error"]


class _Resource(_Fhir):
    resource_type: str = Field(alias="resourceType")
    response: _Response | None = None
    issue: list[_Issue] = []


class _Entry(_Fhir):
    resource: _Resource


class _Bundle(_Fhir):
    resource_type: Literal["Bundle"] = Field(alias="resourceType")
    entry: list[_Entry] = Field(min_length=1)


def parse_response(content: bytes) -> Itk3Response:
    """Read an ITK3 response: which message it answers and with what code. Any
    other shape (not JSON, not a Bundle, members missing or mistyped) raises
    ``Itk3Unreadable`` naming the members, never their values."""
    try:
        bundle = _Bundle.model_validate_json(content)
    except ValidationError as exc:
        # ``from None``: pydantic's own message quotes the values it was given.
        raise Itk3Unreadable(problems(exc)) from None
    resources = [entry.resource for entry in bundle.entry]
    headers = [r for r in resources if r.resource_type == "MessageHeader"]
    if not headers or headers[0].response is None:
        raise Itk3Unreadable("no MessageHeader.response")
    response = headers[0].response
    codes = [
        (coding.code, coding.display)
        for resource in resources
        if resource.resource_type == "OperationOutcome"
        for issue in resource.issue
        if issue.details is not None
        for coding in issue.details.coding
        if coding.system == RESPONSE_CODE_SYSTEM and coding.code
    ]
    if not codes:
        raise Itk3Unreadable("no ITK3 response code")
    code, description = codes[0]
    return Itk3Response(
        response_to=response.identifier,
        code=code,
        response_code=response.code,
        description=description,
    )
