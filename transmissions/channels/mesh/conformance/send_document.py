"""The GP Connect Send Document message, built from FHIR STU3 models.

An ITK3 Message Bundle (ITK-Message-Bundle-1) whose MessageHeader
(ITK-MessageHeader-2: both acknowledgements asked for, event ITK007C, our mailbox
as source, the sending trust as sender) focuses an ITK Document Bundle
(ITK-Document-Bundle-1, the document's version in its meta) holding, first, a
CareConnect Composition (SNOMED CT type from the Clinical Document Indexing set,
care setting, title = description, date = event date, author = practitioner and
department, custodian = the sending trust's Organization with its ODS code,
``relatesTo replaces`` for a corrected version), then the Patient (NHS number
with its verification status, name, birth date, gender, hospital number), the
Organizations, the Practitioner, and the document as a DocumentReference/Binary
pair with content type, size, SHA-1 hash (STU3 ``Attachment.hash``) and SHA-256.

The MessageHeader's id is the transmission's public id, so every ITK3 response
names the send it answers. No patient identifier ever goes in a MESH header.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from fhir.resources.STU3.attachment import Attachment
from fhir.resources.STU3.binary import Binary
from fhir.resources.STU3.bundle import Bundle, BundleEntry
from fhir.resources.STU3.codeableconcept import CodeableConcept
from fhir.resources.STU3.coding import Coding
from fhir.resources.STU3.composition import (
    Composition,
    CompositionRelatesTo,
    CompositionSection,
)
from fhir.resources.STU3.documentreference import (
    DocumentReference,
    DocumentReferenceContent,
)
from fhir.resources.STU3.extension import Extension
from fhir.resources.STU3.humanname import HumanName
from fhir.resources.STU3.identifier import Identifier
from fhir.resources.STU3.messageheader import (
    MessageHeader,
    MessageHeaderSource,
)
from fhir.resources.STU3.meta import Meta
from fhir.resources.STU3.organization import Organization
from fhir.resources.STU3.patient import Patient
from fhir.resources.STU3.practitioner import Practitioner
from fhir.resources.STU3.reference import Reference

from transmissions.channels.mesh import itk3

STU3 = "https://fhir.nhs.uk/STU3/StructureDefinition/"
CARECONNECT = "https://fhir.hl7.org.uk/STU3/StructureDefinition/"
PROFILE_MESSAGE_BUNDLE = f"{STU3}ITK-Message-Bundle-1"
PROFILE_MESSAGE_HEADER = f"{STU3}ITK-MessageHeader-2"
PROFILE_DOCUMENT_BUNDLE = f"{STU3}ITK-Document-Bundle-1"
PROFILE_HEADER_ORGANIZATION = f"{STU3}CareConnect-ITK-Header-Organization-1"
PROFILE_COMPOSITION = f"{CARECONNECT}CareConnect-Composition-1"
PROFILE_PATIENT = f"{CARECONNECT}CareConnect-Patient-1"
PROFILE_ORGANIZATION = f"{CARECONNECT}CareConnect-Organization-1"
PROFILE_PRACTITIONER = f"{CARECONNECT}CareConnect-Practitioner-1"
PROFILE_DOCUMENT_REFERENCE = f"{CARECONNECT}CareConnect-DocumentReference-1"
PROFILE_BINARY = f"{STU3}ITK-Attachment-Binary-1"

SNOMED = "http://snomed.info/sct"
UUID_SYSTEM = "https://tools.ietf.org/html/rfc4122"
RECIPIENT_TYPE_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"
NHS_NUMBER_VERIFICATION_EXTENSION = (
    f"{CARECONNECT}Extension-CareConnect-NHSNumberVerificationStatus-1"
)
NHS_NUMBER_VERIFICATION_SYSTEM = (
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1"
)
NHS_NUMBER_VERIFICATION = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
}
CARE_SETTING_EXTENSION = f"{CARECONNECT}Extension-CareConnect-CareSettingType-1"
# A SHA-256 of the attachment beside STU3's SHA-1 ``Attachment.hash``.
SHA256_EXTENSION = (
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-Attachment-SHA256"
)
SEND_EVENT_DISPLAY = "ITK GP Connect Send Document"

# docflow's document types -> SNOMED CT record artifact types from the PRSB /
# Clinical Document Indexing set. Overridable per source system
# (DOCFLOW_MESH_SNOMED_TYPES = {"<source system>": {"<type>": [code, display]}}).
DOCUMENT_TYPES: dict[str, tuple[str, str]] = {
    "discharge_summary": ("823701000000103", "Discharge letter"),
    "clinic_letter": ("823681000000100", "Outpatient letter"),
    "ed_attendance": ("823691000000103", "Clinical letter"),
    "result": ("4241000179101", "Laboratory report"),
    "referral": ("25611000000107", "Referral letter"),
    "other": ("823691000000103", "Clinical letter"),
}
GENDERS = {"Male": "male", "Female": "female", "Other": "other", "Unknown": "unknown"}


class SendDocumentRefused(ValueError):
    """The document must not go as a Send Document message (a confidential one:
    2.0.2 receivers reject ``Composition.confidentiality = R`` with 20009)."""


@dataclass(frozen=True)
class SendDocumentInput:
    """Everything one Send Document message says, in docflow's own words."""

    message_id: str
    sender_mailbox: str
    sender_ods_code: str
    sender_name: str
    recipient_ods_code: str
    recipient_name: str
    document_id: str
    document_version: int
    replaces_document_id: str | None
    source_system: str
    document_type: str
    description: str
    event_date: datetime.date
    author_name: str
    department: str
    inpatient: bool
    nhs_number: str
    family_name: str
    given_names: str
    birth_date: datetime.date
    gender: str
    mrn: str
    payload_id: str
    media_type: str
    content: bytes = field(repr=False)
    confidential: bool = False

    def __repr__(self) -> str:  # never show patient details in tracebacks
        return f"SendDocumentInput(message_id={self.message_id!r})"


def document_type_coding(*, source_system: str, document_type: str) -> Coding:
    """The SNOMED CT type for a docflow document type, as its source maps it."""
    overrides = getattr(settings, "DOCFLOW_MESH_SNOMED_TYPES", {}) or {}
    code, display = (overrides.get(source_system) or {}).get(
        document_type
    ) or DOCUMENT_TYPES.get(document_type, DOCUMENT_TYPES["other"])
    return Coding(system=SNOMED, code=str(code), display=str(display))


def _urn(value: str) -> str:
    return f"urn:uuid:{value}"


def _ods(code: str) -> Identifier:
    return Identifier(system=itk3.ODS_SYSTEM, value=code)


def _handling(sender_reference: str) -> Extension:
    return Extension(
        url=itk3.HANDLING_EXTENSION,
        extension=[
            Extension(url="BusAckRequested", valueBoolean=True),
            Extension(url="InfAckRequested", valueBoolean=True),
            Extension(
                url="RecipientType",
                valueCoding=Coding(
                    system=RECIPIENT_TYPE_SYSTEM, code="FA", display="For Action"
                ),
            ),
            Extension(
                url="MessageDefinition",
                valueReference=Reference(reference=itk3.MESSAGE_DEFINITION),
            ),
            Extension(url="SenderReference", valueString=sender_reference),
            Extension(url="LocalExtension", valueString="None"),
        ],
    )


def _verification() -> Extension:
    code = str(getattr(settings, "DOCFLOW_MESH_NHS_NUMBER_VERIFICATION", "01"))
    return Extension(
        url=NHS_NUMBER_VERIFICATION_EXTENSION,
        valueCodeableConcept=CodeableConcept(
            coding=[
                Coding(
                    system=NHS_NUMBER_VERIFICATION_SYSTEM,
                    code=code,
                    display=NHS_NUMBER_VERIFICATION.get(code, code),
                )
            ]
        ),
    )


def send_document_message(data: SendDocumentInput) -> bytes:
    """The Send Document message for one document, as FHIR JSON bytes (built from
    the STU3 models, so every resource is valid by FHIR's base rules)."""
    if data.confidential:
        raise SendDocumentRefused("confidential documents are not sent this way")
    ids = {
        name: str(uuid.uuid4())
        for name in (
            "header_org",
            "document_bundle",
            "composition",
            "patient",
            "trust",
            "department",
            "practice",
            "practitioner",
            "reference",
            "binary",
        )
    }
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    type_coding = document_type_coding(
        source_system=data.source_system, document_type=data.document_type
    )
    sha1 = hashlib.sha1(data.content).digest()  # noqa: S324 - STU3 Attachment.hash
    sha256 = hashlib.sha256(data.content).hexdigest()
    trust = Reference(reference=_urn(ids["trust"]), display=data.sender_name)
    patient_ref = Reference(reference=_urn(ids["patient"]))
    authors = [
        Reference(reference=_urn(ids["department" if data.department else "trust"]))
    ]
    if data.author_name:
        authors.insert(0, Reference(reference=_urn(ids["practitioner"])))

    composition = Composition(
        id=ids["composition"],
        meta=Meta(profile=[PROFILE_COMPOSITION]),
        extension=[
            Extension(
                url=CARE_SETTING_EXTENSION,
                valueCodeableConcept=CodeableConcept(
                    text=("Inpatient" if data.inpatient else "Outpatient")
                    + (f": {data.department}" if data.department else "")
                ),
            )
        ],
        identifier=Identifier(system=UUID_SYSTEM, value=data.document_id),
        status="final",
        type=CodeableConcept(coding=[type_coding]),
        subject=patient_ref,
        date=data.event_date.isoformat(),
        author=authors,
        title=data.description,
        confidentiality="N",
        custodian=trust,
        relatesTo=[
            CompositionRelatesTo(
                code="replaces",
                targetIdentifier=Identifier(
                    system=UUID_SYSTEM, value=data.replaces_document_id
                ),
            )
        ]
        if data.replaces_document_id
        else None,
        section=[
            CompositionSection(
                title=data.description,
                code=CodeableConcept(coding=[type_coding]),
                entry=[Reference(reference=_urn(ids["reference"]))],
            )
        ],
    )
    patient_identifiers = [
        Identifier(
            system=itk3.NHS_NUMBER_SYSTEM,
            value=data.nhs_number,
            extension=[_verification()],
        )
    ]
    if data.mrn:
        patient_identifiers.append(
            Identifier(
                system=f"https://fhir.nhs.uk/Id/local-patient-identifier/{data.sender_ods_code}",
                value=data.mrn,
                assigner=trust,
            )
        )
    patient = Patient(
        id=ids["patient"],
        meta=Meta(profile=[PROFILE_PATIENT]),
        identifier=patient_identifiers,
        name=[
            HumanName(
                use="official",
                family=data.family_name,
                given=data.given_names.split() or None,
            )
        ],
        gender=GENDERS.get(data.gender) if data.gender else None,
        birthDate=data.birth_date.isoformat(),
    )
    organisations = [
        Organization(
            id=ids["trust"],
            meta=Meta(profile=[PROFILE_ORGANIZATION]),
            identifier=[_ods(data.sender_ods_code)],
            name=data.sender_name,
        ),
        Organization(
            id=ids["practice"],
            meta=Meta(profile=[PROFILE_ORGANIZATION]),
            identifier=[_ods(data.recipient_ods_code)],
            name=data.recipient_name or None,
        ),
    ]
    if data.department:
        organisations.append(
            Organization(
                id=ids["department"],
                meta=Meta(profile=[PROFILE_ORGANIZATION]),
                name=data.department,
                partOf=trust,
            )
        )
    others = []
    if data.author_name:
        others.append(
            Practitioner(
                id=ids["practitioner"],
                meta=Meta(profile=[PROFILE_PRACTITIONER]),
                name=[HumanName(text=data.author_name)],
            )
        )
    reference = DocumentReference(
        id=ids["reference"],
        meta=Meta(profile=[PROFILE_DOCUMENT_REFERENCE]),
        masterIdentifier=Identifier(system=UUID_SYSTEM, value=data.payload_id),
        status="current",
        type=CodeableConcept(coding=[type_coding]),
        subject=patient_ref,
        created=data.event_date.isoformat(),
        indexed=now.isoformat(),
        author=authors,
        custodian=trust,
        description=data.description,
        content=[
            DocumentReferenceContent(
                attachment=Attachment(
                    contentType=data.media_type,
                    url=_urn(ids["binary"]),
                    size=len(data.content),
                    hash=base64.b64encode(sha1).decode("ascii"),
                    title=data.description,
                    creation=data.event_date.isoformat(),
                    extension=[Extension(url=SHA256_EXTENSION, valueString=sha256)],
                )
            )
        ],
    )
    binary = Binary(
        id=ids["binary"],
        meta=Meta(profile=[PROFILE_BINARY]),
        contentType=data.media_type,
        content=base64.b64encode(data.content).decode("ascii"),
    )
    document_resources = [
        composition,
        patient,
        *organisations,
        *others,
        reference,
        binary,
    ]
    document_bundle = Bundle(
        id=ids["document_bundle"],
        meta=Meta(
            profile=[PROFILE_DOCUMENT_BUNDLE],
            versionId=str(data.document_version),
            lastUpdated=now.isoformat(),
        ),
        identifier=Identifier(system=UUID_SYSTEM, value=data.document_id),
        type="document",
        entry=[
            BundleEntry(fullUrl=_urn(resource.id), resource=resource)
            for resource in document_resources
        ],
    )
    header_org = Organization(
        id=ids["header_org"],
        meta=Meta(profile=[PROFILE_HEADER_ORGANIZATION]),
        identifier=[_ods(data.sender_ods_code)],
        name=data.sender_name,
    )
    header = MessageHeader(
        id=data.message_id,
        meta=Meta(profile=[PROFILE_MESSAGE_HEADER]),
        extension=[_handling(data.document_id)],
        event=Coding(
            system=itk3.EVENT_SYSTEM,
            code=itk3.SEND_EVENT,
            display=SEND_EVENT_DISPLAY,
        ),
        timestamp=now.isoformat(),
        sender=Reference(reference=_urn(ids["header_org"])),
        source=MessageHeaderSource(endpoint=data.sender_mailbox),
        focus=[Reference(reference=_urn(ids["document_bundle"]))],
    )
    message = Bundle(
        id=str(uuid.uuid4()),
        meta=Meta(profile=[PROFILE_MESSAGE_BUNDLE], lastUpdated=now.isoformat()),
        identifier=Identifier(system=UUID_SYSTEM, value=data.message_id),
        type="message",
        entry=[
            BundleEntry(fullUrl=_urn(data.message_id), resource=header),
            BundleEntry(fullUrl=_urn(ids["header_org"]), resource=header_org),
            BundleEntry(fullUrl=_urn(ids["document_bundle"]), resource=document_bundle),
        ],
    )
    return message.model_dump_json(exclude_none=True).encode()
