"""POST and GET DocumentReference, and the CapabilityStatement, over HTTP."""

from __future__ import annotations

import base64
import datetime
import json
import logging

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from rest_framework.test import APIClient

from audit.models import AuditEvent
from docflow.api.fhir.resources import LIFECYCLE_EXTENSION
from docflow.models import Document, DocumentStatus
from docflow.services import document_cancel
from tests.factories import (
    SendingOrganisationFactory,
    UserFactory,
    make_api_key,
    submit_document,
)
from tests.fhir.conftest import FHIR_JSON, ODS_SYSTEM, document_reference
from tests.samples import (
    INVALID_CHECKSUM_NHS_NUMBER,
    VALID_NHS_NUMBER,
    exe_bytes,
    intake_json_body,
    pdf_bytes,
)

pytestmark = pytest.mark.django_db

S = DocumentStatus


def issues_of(response) -> list[tuple[str, str]]:
    """(expression, docflow code) of each issue, after checking the outcome."""
    assert response["Content-Type"].startswith(FHIR_JSON), response["Content-Type"]
    outcome = OperationOutcome.model_validate(response.json())
    found = []
    for issue in outcome.issue:
        assert issue.severity == "error"
        code = issue.details.coding[0].code
        found.append(((issue.expression or [""])[0], code))
    return found


def lifecycle_state(body: dict) -> str:
    return next(
        e["valueCode"] for e in body["extension"] if e["url"] == LIFECYCLE_EXTENSION
    )


def test_a_valid_document_reference_is_stored_and_answered_201_with_location(
    post_fhir, api_key
):
    response = post_fhir(document_reference())

    assert response.status_code == 201, response.content
    body = response.json()
    resource = DocumentReference.model_validate(body)
    document = Document.objects.get()
    assert response["Location"] == (
        f"http://testserver/fhir/R4/DocumentReference/{document.public_id}"
    )
    assert resource.id == str(document.public_id)
    assert lifecycle_state(body) == S.SUBMITTED
    assert (resource.status, resource.docStatus) == ("current", "final")
    assert resource.masterIdentifier.value == "evt-1"
    # Every element reached the document, through intake's own service.
    assert document.source_system == f"fhir:{api_key[0].prefix}"
    assert document.idempotency_key == "evt-1"
    assert document.source_reference == "evt-1"
    assert document.nhs_number == VALID_NHS_NUMBER
    assert (document.patient_family_name, document.patient_given_names) == (
        "Testpatient",
        "Alex",
    )
    assert document.patient_birth_date == datetime.date(1950, 3, 1)
    assert document.patient_gender == "Female"
    assert document.destination_ods_code == "A81001"
    assert document.document_type == "discharge_summary"
    assert document.description == "Discharge summary, ward 7"
    assert document.event_date == datetime.date(2024, 1, 14)
    assert document.sender_person == "Dr A Example"
    assert document.sender_department == "Cardiology"
    assert document.payload_versions.get().media_type == "application/pdf"
    event = AuditEvent.objects.get(action="document.submitted")
    assert event.target_id == str(document.public_id)
    # The answer names no patient detail.
    text = response.content.decode()
    assert VALID_NHS_NUMBER not in text
    assert "Testpatient" not in text


def test_without_a_period_the_event_date_is_the_date_in_london(post_fhir):
    body = document_reference(context=None, date="2024-07-14T23:30:00Z")

    response = post_fhir(body)

    assert response.status_code == 201, response.content
    assert Document.objects.get().event_date == datetime.date(2024, 7, 15)


def test_read_answers_the_document_status_and_lifecycle_state(
    post_fhir, api_client, api_key
):
    created = post_fhir(document_reference()).json()
    document = Document.objects.get()

    response = api_client.get(f"/fhir/R4/DocumentReference/{created['id']}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith(FHIR_JSON)
    body = response.json()
    resource = DocumentReference.model_validate(body)
    assert resource.status == "current"
    assert lifecycle_state(body) == S.SUBMITTED
    assert resource.custodian.identifier.value == "RX1"
    assert resource.type.coding[0].code == "373942005"
    assert resource.content[0].attachment.url == (
        f"/api/v1/documents/{document.public_id}/content"
    )
    assert VALID_NHS_NUMBER not in response.content.decode()

    document_cancel(document=document, reason="sent in error", actor=None)
    body = api_client.get(f"/fhir/R4/DocumentReference/{created['id']}").json()

    assert lifecycle_state(body) == S.CANCELLED
    assert body["status"] == "entered-in-error"


def test_another_organisations_document_is_not_found(post_fhir):
    created = post_fhir(document_reference()).json()
    other = APIClient()
    other.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {make_api_key(name='Other')[1]}",
    )

    response = other.get(f"/fhir/R4/DocumentReference/{created['id']}")

    assert response.status_code == 404
    assert issues_of(response) == [("", "not_found")]


def _patient(body: dict) -> dict:
    return body["contained"][0]


def _set(path: str, value):
    """A change to one element of the valid resource, by a dotted path."""

    def change(body: dict) -> None:
        target = body
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is None:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


TOMORROW = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()

INVALID_CASES = [
    (
        "nhs number checksum",
        _set("subject.identifier.value", INVALID_CHECKSUM_NHS_NUMBER),
        "DocumentReference.subject.identifier.value",
        "nhs_number_checksum",
    ),
    (
        "contained Patient with another NHS number",
        _set("contained.0.identifier.0.value", "9990000026"),
        "DocumentReference.contained[0].identifier[0].value",
        "mismatch",
    ),
    (
        "nhs number not in the NHS system",
        _set("subject.identifier.system", "urn:other"),
        "DocumentReference.subject.identifier",
        "required",
    ),
    (
        "no masterIdentifier",
        _set("masterIdentifier", None),
        "DocumentReference.masterIdentifier.value",
        "required",
    ),
    (
        "masterIdentifier is an NHS number",
        _set("masterIdentifier.value", VALID_NHS_NUMBER),
        "DocumentReference.masterIdentifier.value",
        "nhs_number_not_allowed",
    ),
    (
        "unknown SNOMED CT document type",
        _set("type.coding.0.code", "999999999"),
        "DocumentReference.type.coding[0].code",
        "invalid_choice",
    ),
    (
        "type not in SNOMED CT",
        _set("type.coding.0.system", "urn:local"),
        "DocumentReference.type",
        "required",
    ),
    (
        "no family name",
        _set("contained.0.name.0.family", None),
        "DocumentReference.contained[0].name[0].family",
        "required",
    ),
    (
        "birth date in the future",
        _set("contained.0.birthDate", TOMORROW),
        "DocumentReference.contained[0].birthDate",
        "future_date",
    ),
    (
        "partial birth date",
        _set("contained.0.birthDate", "1950"),
        "DocumentReference.contained[0].birthDate",
        "invalid",
    ),
    (
        "event date in the future",
        _set("context.period.start", TOMORROW),
        "DocumentReference.context.period.start",
        "future_date",
    ),
    (
        "registered practice not an ODS code",
        _set("contained.0.generalPractitioner.0.identifier.value", "not ods!"),
        "DocumentReference.contained[0].generalPractitioner[0].identifier.value",
        "ods_code_format",
    ),
    (
        "no registered practice",
        _set("contained.0.generalPractitioner", None),
        "DocumentReference.contained[0].generalPractitioner",
        "required",
    ),
    (
        "subject not a contained Patient",
        _set("subject.reference", "Patient/123"),
        "DocumentReference.subject.reference",
        "required",
    ),
    (
        "content not base64",
        _set("content.0.attachment.data", "not base64!"),
        "DocumentReference.content[0].attachment.data",
        "base64",
    ),
    (
        "content by reference",
        _set(
            "content.0.attachment",
            {"contentType": "application/pdf", "url": "https://example.org/a.pdf"},
        ),
        "DocumentReference.content[0].attachment.url",
        "not_supported",
    ),
    (
        "media type not accepted",
        _set("content.0.attachment.contentType", "application/rtf"),
        "DocumentReference.content[0].attachment.contentType",
        "invalid_choice",
    ),
    (
        "content is an executable",
        _set("content.0.attachment.data", base64.b64encode(exe_bytes()).decode()),
        "DocumentReference.content[0].attachment.data",
        "executable",
    ),
    (
        "content disagrees with its media type",
        _set("content.0.attachment.contentType", "text/html"),
        "DocumentReference.content[0].attachment.data",
        "type_mismatch",
    ),
    (
        "not a current reference",
        _set("status", "superseded"),
        "DocumentReference.status",
        "invalid_choice",
    ),
    (
        "preliminary",
        _set("docStatus", "preliminary"),
        "DocumentReference.docStatus",
        "invalid_choice",
    ),
    (
        "an element R4 does not have",
        _set("recipient", {"display": "Dr B"}),
        "DocumentReference.recipient",
        "structure",
    ),
    (
        "a date that is not a FHIR instant",
        _set("date", "15/01/2024"),
        "DocumentReference.date",
        "invalid",
    ),
    (
        "gender not FHIR's",
        _set("contained.0.gender", "f"),
        "DocumentReference.contained[0].gender",
        "invalid_choice",
    ),
    (
        "no custodian",
        _set("custodian", None),
        "DocumentReference.custodian.identifier",
        "required",
    ),
    (
        "relation other than replaces",
        _set(
            "relatesTo",
            [{"code": "appends", "target": {"reference": "DocumentReference/x"}}],
        ),
        "DocumentReference.relatesTo[0].code",
        "invalid_choice",
    ),
]


@pytest.mark.parametrize(
    ("change", "expression", "code"),
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_each_invalid_element_is_answered_with_an_issue_at_that_element(
    post_fhir, change, expression, code
):
    body = document_reference()
    change(body)

    response = post_fhir(body)

    assert response.status_code == 400, response.content
    assert (expression, code) in issues_of(response)
    assert not Document.objects.exists()
    assert not AuditEvent.objects.filter(action="document.submitted").exists()


def test_every_fault_is_answered_at_once_one_issue_per_element(post_fhir):
    body = document_reference()
    body["subject"]["identifier"]["value"] = INVALID_CHECKSUM_NHS_NUMBER
    del body["contained"][0]["identifier"]
    body["contained"][0]["generalPractitioner"][0]["identifier"]["value"] = "??"
    body["type"]["coding"][0]["code"] = "1"
    del body["masterIdentifier"]

    response = post_fhir(body)

    assert response.status_code == 400
    assert sorted(issues_of(response)) == [
        (
            "DocumentReference.contained[0].generalPractitioner[0].identifier.value",
            "ods_code_format",
        ),
        ("DocumentReference.masterIdentifier.value", "required"),
        ("DocumentReference.subject.identifier.value", "nhs_number_checksum"),
        ("DocumentReference.type.coding[0].code", "invalid_choice"),
    ]


def test_issue_codes_are_the_rest_apis_problem_codes(api_client, post_fhir):
    rest = api_client.post(
        "/api/v1/documents",
        intake_json_body(
            nhs_number=INVALID_CHECKSUM_NHS_NUMBER, destination_ods_code="not ods!"
        ),
        format="json",
        HTTP_IDEMPOTENCY_KEY="evt-rest",
    )
    body = document_reference()
    body["subject"]["identifier"]["value"] = INVALID_CHECKSUM_NHS_NUMBER
    body["contained"][0]["generalPractitioner"][0]["identifier"]["value"] = "not ods!"

    fhir = post_fhir(body)

    rest_codes = {(e["field"], e["code"]) for e in rest.json()["errors"]}
    fhir_codes = dict(issues_of(fhir))
    assert rest_codes == {
        ("nhs_number", fhir_codes["DocumentReference.subject.identifier.value"]),
        (
            "destination_ods_code",
            fhir_codes[
                "DocumentReference.contained[0].generalPractitioner[0].identifier.value"
            ],
        ),
    }


def test_a_refusal_never_repeats_the_patient_details_sent(post_fhir):
    body = document_reference()
    body["subject"]["identifier"]["value"] = INVALID_CHECKSUM_NHS_NUMBER
    body["contained"][0]["birthDate"] = "01/03/1950"

    response = post_fhir(body)

    assert response.status_code == 400
    text = response.content.decode()
    assert INVALID_CHECKSUM_NHS_NUMBER not in text
    assert "01/03/1950" not in text


def test_a_resource_that_is_not_a_document_reference_is_refused(post_fhir):
    response = post_fhir({"resourceType": "Patient"})

    assert response.status_code == 400
    assert issues_of(response) == [("resourceType", "invalid")]


def test_a_body_that_is_not_json_is_an_outcome(api_client):
    response = api_client.post(
        "/fhir/R4/DocumentReference", data="{not json", content_type=FHIR_JSON
    )

    assert response.status_code == 400
    assert issues_of(response) == [("", "structure")]


def test_content_over_the_ceiling_is_413(post_fhir, settings):
    settings.DOCFLOW_MAX_UPLOAD_BYTES = 1000
    body = document_reference()
    body["content"][0]["attachment"]["data"] = base64.b64encode(
        pdf_bytes(pad_to=5000)
    ).decode()

    response = post_fhir(body)

    assert response.status_code == 413
    assert issues_of(response) == [
        ("DocumentReference.content[0].attachment.data", "too_large")
    ]
    assert not Document.objects.exists()


def test_a_custodian_other_than_the_keys_organisation_is_forbidden(post_fhir):
    SendingOrganisationFactory(ods_code="RY2")
    body = document_reference(
        custodian={"identifier": {"system": ODS_SYSTEM, "value": "RY2"}}
    )

    response = post_fhir(body)

    assert response.status_code == 403
    assert issues_of(response) == [
        ("DocumentReference.custodian.identifier.value", "forbidden")
    ]
    assert not Document.objects.exists()


def test_resending_the_same_master_identifier_returns_the_original_once(post_fhir):
    first = post_fhir(document_reference())
    again = post_fhir(document_reference())

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    DocumentReference.model_validate(again.json())
    assert Document.objects.count() == 1
    assert AuditEvent.objects.filter(action="document.submitted").count() == 1


def test_the_same_master_identifier_for_another_document_is_409(post_fhir):
    post_fhir(document_reference())
    other = document_reference(description="Another letter")

    response = post_fhir(other)

    assert response.status_code == 409
    assert issues_of(response) == [
        ("DocumentReference.masterIdentifier.value", "idempotency_conflict")
    ]
    assert Document.objects.count() == 1


def test_the_same_id_from_another_api_key_is_another_document(
    post_fhir, sending_organisation
):
    post_fhir(document_reference())
    second = APIClient()
    raw = make_api_key(sending_organisation=sending_organisation, name="PAS")[1]
    second.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    response = second.post(
        "/fhir/R4/DocumentReference",
        data=json.dumps(document_reference()),
        content_type=FHIR_JSON,
    )

    assert response.status_code == 201
    assert Document.objects.count() == 2


def _correction(target: dict, **overrides) -> dict:
    body = document_reference(
        masterIdentifier={"value": "evt-1-v2"},
        docStatus="amended",
        description="Discharge summary, ward 7 (corrected)",
        relatesTo=[{"code": "replaces", "target": target}],
        **overrides,
    )
    return body


@pytest.mark.parametrize("by", ["reference", "identifier"])
def test_a_corrected_version_is_linked_and_withdraws_the_unsent_original(
    post_fhir, api_client, by
):
    original = post_fhir(document_reference()).json()
    target = (
        {"reference": f"DocumentReference/{original['id']}"}
        if by == "reference"
        else {"identifier": {"value": "evt-1"}}
    )

    response = post_fhir(_correction(target))

    assert response.status_code == 201, response.content
    corrected = Document.objects.get(public_id=response.json()["id"])
    old = Document.objects.get(public_id=original["id"])
    assert corrected.replaces == old
    assert corrected.idempotency_key == "evt-1-v2"
    assert old.status == S.CANCELLED
    assert old.status_reason == "replaced by a corrected version"
    assert AuditEvent.objects.get(
        action="document.submitted", target_id=str(corrected.public_id)
    ).data["replaces"] == str(old.public_id)
    body = response.json()
    assert body["docStatus"] == "amended"
    assert body["relatesTo"] == [
        {
            "code": "replaces",
            "target": {"reference": f"DocumentReference/{old.public_id}"},
        }
    ]
    old_read = api_client.get(f"/fhir/R4/DocumentReference/{old.public_id}").json()
    assert old_read["status"] == "superseded"
    assert lifecycle_state(old_read) == S.CANCELLED
    # Resent: the same corrected version, nothing new.
    again = post_fhir(_correction(target))
    assert again.status_code == 200
    assert again.json()["id"] == str(corrected.public_id)
    assert Document.objects.count() == 2


def test_a_correction_of_a_document_already_on_its_way_leaves_it_on_its_way(
    post_fhir,
):
    original = post_fhir(document_reference()).json()
    Document.objects.filter(public_id=original["id"]).update(status=S.RECEIVED)

    response = post_fhir(
        _correction({"reference": f"DocumentReference/{original['id']}"})
    )

    assert response.status_code == 201
    assert Document.objects.get(public_id=original["id"]).status == S.RECEIVED


def test_a_correction_of_a_document_that_is_not_yours_is_refused(post_fhir):
    other_key = make_api_key(name="Other")[0]
    theirs = submit_document(sending_organisation=other_key.sending_organisation)

    response = post_fhir(
        _correction({"reference": f"DocumentReference/{theirs.public_id}"})
    )

    assert response.status_code == 400
    assert issues_of(response) == [
        ("DocumentReference.relatesTo[0].target.reference", "not_found")
    ]
    assert Document.objects.count() == 1


def test_a_resend_naming_another_replaced_document_is_a_conflict(post_fhir):
    first = post_fhir(document_reference()).json()
    post_fhir(
        document_reference(masterIdentifier={"value": "evt-other"}, description="B")
    )
    post_fhir(_correction({"reference": f"DocumentReference/{first['id']}"}))

    response = post_fhir(_correction({"identifier": {"value": "evt-other"}}))

    assert response.status_code == 409
    assert Document.objects.count() == 3


def test_without_an_api_key_the_answer_is_401_as_an_outcome():
    response = APIClient().post(
        "/fhir/R4/DocumentReference",
        data="{}",
        content_type=FHIR_JSON,
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert [code for _e, code in issues_of(response)] == ["not_authenticated"]


def test_a_revoked_key_is_refused(api_key, api_client, post_fhir):
    api_key[0].revoked = True
    api_key[0].save()

    response = post_fhir(document_reference())

    assert response.status_code == 401
    assert [code for _e, code in issues_of(response)] == ["authentication_failed"]
    assert not Document.objects.exists()


def test_a_staff_session_may_read_but_not_submit(post_fhir, sending_organisation):
    user = UserFactory(is_superuser=True, is_staff=True)
    client = APIClient()
    client.force_authenticate(user=user)
    response = client.post(
        "/fhir/R4/DocumentReference",
        data=json.dumps(document_reference()),
        content_type=FHIR_JSON,
    )

    assert response.status_code == 403
    assert issues_of(response) == [("", "forbidden")]


def test_the_capability_statement_is_public_and_names_what_is_served():
    response = APIClient().get("/fhir/R4/metadata")

    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    (resource,) = statement.rest[0].resource
    assert resource.type == "DocumentReference"
    assert sorted(i.code for i in resource.interaction) == ["create", "read"]


def test_unknown_paths_and_malformed_ids_are_outcomes(api_client):
    for path in ("/fhir/R4/Patient/1", "/fhir/R4/DocumentReference/not-a-uuid"):
        response = api_client.get(path)
        assert response.status_code == 404
        assert issues_of(response) == [("", "not_found")]


def test_a_json_content_type_is_accepted_too(api_client):
    response = api_client.post(
        "/fhir/R4/DocumentReference",
        data=json.dumps(document_reference()),
        content_type="application/json",
    )

    assert response.status_code == 201


def test_no_patient_detail_reaches_the_logs_or_the_urls(post_fhir, api_client, caplog):
    caplog.set_level(logging.DEBUG)
    refused = document_reference()
    refused["content"][0]["attachment"]["data"] = base64.b64encode(exe_bytes()).decode()
    post_fhir(refused)
    accepted = post_fhir(document_reference())
    api_client.get(accepted["Location"])

    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for detail in (VALID_NHS_NUMBER, "Testpatient", "1950-03-01"):
        assert detail not in logged
        assert detail not in accepted["Location"]
    assert "intake refused content: executable" in caplog.text
