"""The GP Connect Send Document message, read on the wire by the practice's MESH
client from the real mesh-sandbox, and the checks every message passes before it
leaves."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import uuid

import pytest

from docflow.models import DocumentStatus
from docflow.payloads.store import payload_blob_read
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import ready_document, resources_of
from tests.samples import VALID_NHS_NUMBER
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.conformance import send_document as sd
from transmissions.channels.mesh.conformance.validation import (
    SendDocumentInvalid,
    profiles,
    send_document_problems,
    send_document_validate,
)
from transmissions.models import Transmission
from transmissions.pipeline.sending import SendOutcome, document_send

S = DocumentStatus


def _by_url(bundle: dict) -> dict[str, dict]:
    return {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}


def test_the_practice_receives_a_send_document_message_that_meets_its_profiles(
    mesh_db, practice
):
    document = ready_document(
        mesh_db,
        document_type="clinic_letter",
        description="Cardiology clinic letter",
        event_date=datetime.date(2026, 11, 20),
        sender_person="Dr Ada Example",
        sender_department="Cardiology",
        patient_gender="Female",
        mrn="RX1-000123",
    )
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    transmission = Transmission.objects.get(document=document)
    payload = transmission.payload_version
    stored = payload_blob_read(
        storage_name=payload.storage_name, expected_sha256=payload.sha256
    )

    message = practice.take()

    assert send_document_problems(message.content) == []
    bundle = json.loads(message.content)
    assert bundle["type"] == "message"
    assert bundle["meta"]["profile"] == [sd.PROFILE_MESSAGE_BUNDLE]
    header = bundle["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    assert header["id"] == str(transmission.public_id)
    assert header["event"]["code"] == itk3.SEND_EVENT
    handling = {ext["url"]: ext for ext in header["extension"][0]["extension"]}
    assert handling["BusAckRequested"]["valueBoolean"] is True
    assert handling["InfAckRequested"]["valueBoolean"] is True
    assert handling["RecipientType"]["valueCoding"]["code"] == "FA"
    assert header["source"]["endpoint"] == mesh_sandbox.OUR_MAILBOX
    # focus -> the ITK Document Bundle, whose first entry is the Composition.
    [focus] = header["focus"]
    document_bundle = _by_url(bundle)[focus["reference"]]
    assert document_bundle["resourceType"] == "Bundle"
    assert document_bundle["type"] == "document"
    assert document_bundle["meta"]["profile"] == [sd.PROFILE_DOCUMENT_BUNDLE]
    assert document_bundle["meta"]["versionId"] == "1"
    inside = _by_url(document_bundle)
    composition = document_bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"] == [
        {
            "system": "http://snomed.info/sct",
            "code": "823681000000100",
            "display": "Outpatient letter",
        }
    ]
    assert composition["title"] == "Cardiology clinic letter"
    assert composition["date"] == "2026-11-20"
    assert composition["confidentiality"] == "N"
    assert "relatesTo" not in composition
    custodian = inside[composition["custodian"]["reference"]]
    assert custodian["resourceType"] == "Organization"
    assert custodian["identifier"] == [
        {"system": itk3.ODS_SYSTEM, "value": mesh_db.sending_organisation.ods_code}
    ]
    authors = [inside[a["reference"]] for a in composition["author"]]
    assert [a["resourceType"] for a in authors] == ["Practitioner", "Organization"]
    assert authors[0]["name"][0]["text"] == "Dr Ada Example"
    assert authors[1]["name"] == "Cardiology"
    patient = inside[composition["subject"]["reference"]]
    assert patient["resourceType"] == "Patient"
    nhs = patient["identifier"][0]
    assert (nhs["system"], nhs["value"]) == (itk3.NHS_NUMBER_SYSTEM, VALID_NHS_NUMBER)
    assert nhs["extension"][0]["url"] == sd.NHS_NUMBER_VERIFICATION_EXTENSION
    assert patient["identifier"][1]["value"] == "RX1-000123"
    assert patient["gender"] == "female"
    assert patient["birthDate"] == document.patient_birth_date.isoformat()
    [reference] = [
        r for r in inside.values() if r["resourceType"] == "DocumentReference"
    ]
    attachment = reference["content"][0]["attachment"]
    sha1 = hashlib.sha1(stored).digest()  # noqa: S324 - STU3 Attachment.hash
    assert attachment["hash"] == base64.b64encode(sha1).decode()
    assert (
        attachment["extension"][0]["valueString"] == hashlib.sha256(stored).hexdigest()
    )
    assert attachment["size"] == len(stored) == payload.size_bytes
    assert attachment["contentType"] == "application/pdf"
    assert reference["description"] == "Cardiology clinic letter"
    binary = inside[attachment["url"]]
    assert base64.b64decode(binary["content"]) == stored
    assert {r["resourceType"] for r in resources_of(message)} >= {
        "MessageHeader",
        "Composition",
        "Patient",
        "Organization",
        "Practitioner",
        "DocumentReference",
        "Binary",
    }
    # MESH headers: the workflow, a local id and subject free of patient
    # identifiers, and a checksum of what was sent.
    assert message.local_id == transmission.idempotency_key
    assert VALID_NHS_NUMBER not in message.local_id + message.subject
    assert message.workflow_id == mesh_sandbox.WORKFLOW


def test_the_message_carries_a_content_checksum(mesh_db, practice):
    document = ready_document(mesh_db)
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    [message_id] = practice.inbox()

    with practice.client._client.retrieve_message(message_id) as raw:
        content = raw.read()
        checksum = raw.mex_header("content-checksum")

    assert checksum == f"SHA256:{hashlib.sha256(content).hexdigest()}"


def _input(**overrides) -> sd.SendDocumentInput:
    values = {
        "message_id": str(uuid.uuid4()),
        "sender_mailbox": "X26ABC1",
        "sender_ods_code": "RX1",
        "sender_name": "Example Hospitals NHS Trust",
        "recipient_ods_code": "X26",
        "recipient_name": "Sandbox Surgery",
        "document_id": str(uuid.uuid4()),
        "document_version": 1,
        "replaces_document_id": None,
        "source_system": "epr",
        "document_type": "discharge_summary",
        "description": "Discharge summary",
        "event_date": datetime.date(2026, 11, 1),
        "author_name": "",
        "department": "",
        "inpatient": True,
        "nhs_number": VALID_NHS_NUMBER,
        "family_name": "Testpatient",
        "given_names": "Alex",
        "birth_date": datetime.date(1950, 3, 1),
        "gender": "",
        "mrn": "",
        "payload_id": str(uuid.uuid4()),
        "media_type": "application/pdf",
        "content": b"%PDF-1.7 letter",
    }
    values.update(overrides)
    return sd.SendDocumentInput(**values)


@pytest.mark.hazard("HAZ-016")
def test_the_message_asks_for_both_acknowledgements():
    """Built without a network or database: the practice is asked for the
    infrastructure and the business acknowledgement a send waits for."""
    bundle = json.loads(sd.send_document_message(_input()))

    header = bundle["entry"][0]["resource"]
    handling = {ext["url"]: ext for ext in header["extension"][0]["extension"]}
    assert header["resourceType"] == "MessageHeader"
    assert header["event"]["code"] == itk3.SEND_EVENT
    assert handling["InfAckRequested"]["valueBoolean"] is True
    assert handling["BusAckRequested"]["valueBoolean"] is True


def test_a_corrected_version_says_which_document_it_replaces():
    original = str(uuid.uuid4())
    content = sd.send_document_message(
        _input(document_version=2, replaces_document_id=original)
    )

    assert send_document_problems(content) == []
    document_bundle = json.loads(content)["entry"][2]["resource"]
    composition = document_bundle["entry"][0]["resource"]
    assert document_bundle["meta"]["versionId"] == "2"
    assert composition["relatesTo"] == [
        {
            "code": "replaces",
            "targetIdentifier": {"system": sd.UUID_SYSTEM, "value": original},
        }
    ]


def test_the_snomed_type_can_be_overridden_per_source_system(settings):
    settings.DOCFLOW_MESH_SNOMED_TYPES = {
        "epr": {"discharge_summary": ["1066281000000101", "Emergency care discharge"]}
    }
    content = sd.send_document_message(_input())
    other = sd.send_document_message(_input(source_system="letters"))

    def type_code(raw):
        bundle = json.loads(raw)["entry"][2]["resource"]
        return bundle["entry"][0]["resource"]["type"]["coding"][0]["code"]

    assert type_code(content) == "1066281000000101"
    assert type_code(other) == "823701000000103"


def test_a_confidential_document_is_refused_before_sending():
    with pytest.raises(sd.SendDocumentRefused):
        sd.send_document_message(_input(confidential=True))


def test_the_vendored_profiles_are_the_ones_the_message_claims():
    claimed = {
        sd.PROFILE_MESSAGE_BUNDLE,
        sd.PROFILE_MESSAGE_HEADER,
        sd.PROFILE_DOCUMENT_BUNDLE,
        itk3.HANDLING_EXTENSION,
    }
    assert claimed <= set(profiles())


def _spoil(content: bytes, change) -> bytes:
    message = json.loads(content)
    change(message)
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda m: m["entry"][0]["resource"]["event"].pop("display"),
            "MessageHeader.event.display min 1",
        ),
        (
            lambda m: m["entry"][0]["resource"]["extension"][0]["extension"].pop(0),
            "Extension.extension:BusAckRequested min 1",
        ),
        (
            lambda m: m["entry"][0]["resource"]["event"].update(system="urn:other"),
            "MessageHeader.event.system is not its fixed value",
        ),
        (lambda m: m.pop("identifier"), "Bundle.identifier min 1"),
        (
            lambda m: m["entry"][2]["resource"]["entry"][0]["resource"].update(
                confidentiality="R"
            ),
            "confidentiality R",
        ),
        (
            lambda m: m["entry"][2]["resource"]["entry"][0]["resource"].pop(
                "custodian"
            ),
            "Composition.custodian",
        ),
        (
            lambda m: m["entry"][2]["resource"]["entry"][0]["resource"]["type"].update(
                coding=[{"code": "x"}]
            ),
            "no SNOMED CT code",
        ),
        (
            lambda m: m["entry"][2]["resource"]["entry"][-1]["resource"].update(
                content=base64.b64encode(b"other bytes").decode()
            ),
            "hash does not match",
        ),
        (
            lambda m: m["entry"][2]["resource"]["entry"][1]["resource"].update(
                birthDate="1950-13-45"
            ),
            "FHIR STU3",
        ),
    ],
)
def test_a_message_that_breaks_its_profiles_is_refused(change, problem):
    content = _spoil(sd.send_document_message(_input(author_name="Dr A")), change)

    with pytest.raises(SendDocumentInvalid) as invalid:
        send_document_validate(content)

    assert any(problem in found for found in invalid.value.problems), (
        invalid.value.problems
    )
    assert VALID_NHS_NUMBER not in str(invalid.value)


def test_the_input_never_shows_the_patient_in_a_traceback():
    assert VALID_NHS_NUMBER not in repr(_input())
    assert "Testpatient" not in repr(_input())
