import base64
import datetime

import pytest
import time_machine
from rest_framework import serializers

from audit.models import AuditEvent
from docflow.api.serializers import DocumentJsonIntakeSerializer
from docflow.models import Document, DocumentStatus, PayloadVersion
from tests.samples import (
    INVALID_CHECKSUM_NHS_NUMBER,
    VALID_NHS_NUMBER,
    docm_bytes,
    exe_bytes,
    intake_json_body,
    pdf_bytes,
)

pytestmark = pytest.mark.django_db


def payload(**overrides):
    return intake_json_body(**overrides)


def test_json_intake_creates_submitted_document_with_encrypted_payload(api_client):
    response = api_client.post(
        "/api/v1/documents", payload(), format="json", HTTP_IDEMPOTENCY_KEY="evt-1"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == DocumentStatus.SUBMITTED
    document = Document.objects.get(public_id=body["id"])
    assert document.nhs_number == VALID_NHS_NUMBER
    version = PayloadVersion.objects.get(document=document)
    assert version.media_type == "application/pdf"
    assert VALID_NHS_NUMBER not in response.content.decode()
    assert AuditEvent.objects.filter(
        action="document.submitted", target_id=str(document.public_id)
    ).exists()


@pytest.mark.parametrize(
    "moment",
    [
        datetime.datetime(2025, 1, 10, 9, 30, tzinfo=datetime.UTC),
        # British Summer Time: timestamps are rendered with their +01:00 offset.
        datetime.datetime(2025, 7, 10, 9, 30, 0, 123456, tzinfo=datetime.UTC),
    ],
)
def test_new_document_answer_equals_what_detail_and_replay_show(api_client, moment):
    with time_machine.travel(moment, tick=True):
        created = api_client.post(
            "/api/v1/documents",
            payload(source_reference="ref-1"),
            format="json",
            HTTP_IDEMPOTENCY_KEY="evt-same",
        )
        assert created.status_code == 201, created.content
        detail = api_client.get(created["Location"])
        replay = api_client.post(
            "/api/v1/documents",
            payload(source_reference="ref-1"),
            format="json",
            HTTP_IDEMPOTENCY_KEY="evt-same",
        )

    # The 201 body is built from the rows just written; the detail view and the
    # replay read them back through DocumentDetailSerializer. All three must agree.
    assert detail.status_code == 200
    assert replay.status_code == 200
    assert created.json() == detail.json() == replay.json()
    assert list(created.json()) == list(detail.json())
    body = created.json()
    assert len(body["payload_versions"]) == 1
    assert body["transmissions"] == []
    assert [event["action"] for event in body["timeline"]] == ["document.submitted"]


def test_multipart_intake_accepts_a_file(api_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = payload()
    del body["content"], body["file_name"]
    body["file"] = SimpleUploadedFile("letter.pdf", pdf_bytes(), "application/pdf")
    response = api_client.post(
        "/api/v1/documents", body, format="multipart", HTTP_IDEMPOTENCY_KEY="evt-m"
    )
    assert response.status_code == 201, response.content
    assert Document.objects.count() == 1


def test_replay_with_same_key_and_body_returns_200_and_the_original(api_client):
    first = api_client.post(
        "/api/v1/documents", payload(), format="json", HTTP_IDEMPOTENCY_KEY="evt-2"
    )
    again = api_client.post(
        "/api/v1/documents", payload(), format="json", HTTP_IDEMPOTENCY_KEY="evt-2"
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Document.objects.count() == 1
    assert PayloadVersion.objects.count() == 1


def test_same_key_with_different_content_is_409_and_stores_nothing(
    api_client, filesystem_payload_store
):
    api_client.post(
        "/api/v1/documents", payload(), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    files_before = sorted(p for p in filesystem_payload_store.rglob("*") if p.is_file())
    response = api_client.post(
        "/api/v1/documents",
        payload(description="Another letter"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert Document.objects.count() == 1
    assert (
        sorted(p for p in filesystem_payload_store.rglob("*") if p.is_file())
        == files_before
    )


def test_every_field_error_is_listed_at_once(api_client):
    response = api_client.post(
        "/api/v1/documents",
        payload(
            nhs_number=INVALID_CHECKSUM_NHS_NUMBER,
            destination_ods_code="a!",
            event_date="2999-01-01",
            description="x" * 256,
            content=base64.b64encode(exe_bytes()).decode(),
            patient_family_name="",
        ),
        format="json",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {
        "nhs_number",
        "destination_ods_code",
        "event_date",
        "description",
        "content",
        "patient_family_name",
        "Idempotency-Key",
    }
    assert Document.objects.count() == 0


def test_docm_renamed_pdf_is_refused_and_nothing_is_stored(
    api_client, filesystem_payload_store
):
    response = api_client.post(
        "/api/v1/documents",
        payload(content=base64.b64encode(docm_bytes()).decode()),
        format="json",
        HTTP_IDEMPOTENCY_KEY="evt-docm",
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "content"
    assert error["code"] == "macro_enabled"
    assert Document.objects.count() == 0
    assert not any(p.is_file() for p in filesystem_payload_store.rglob("*"))


def test_body_over_the_ceiling_is_413(api_client, settings):
    settings.DOCFLOW_MAX_UPLOAD_BYTES = 1000
    response = api_client.post(
        "/api/v1/documents",
        payload(content=base64.b64encode(pdf_bytes(pad_to=5000)).decode()),
        format="json",
        HTTP_IDEMPOTENCY_KEY="evt-big",
    )
    assert response.status_code == 413
    assert Document.objects.count() == 0


class _DeepCopyingJsonIntakeSerializer(DocumentJsonIntakeSerializer):
    """The intake serializer with DRF's own per-instance deep copy of its fields."""

    get_fields = serializers.Serializer.get_fields


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"patient_gender": "Female", "urgent": "true", "notes": "  padded  "},
        {
            "nhs_number": INVALID_CHECKSUM_NHS_NUMBER,
            "destination_ods_code": "a!",
            "event_date": "2999-01-01",
            "description": "x" * 256,
            "patient_gender": "Robot",
            "document_type": "memo",
            "urgent": "perhaps",
            "patient_family_name": "",
        },
        {"content": "not base64!"},
        {"content": base64.b64encode(exe_bytes()).decode()},
    ],
)
def test_intake_serializer_fields_validate_exactly_as_drf_copies_would(overrides):
    body = payload(**overrides)
    ours = DocumentJsonIntakeSerializer(data=body)
    drfs = _DeepCopyingJsonIntakeSerializer(data=body)

    assert ours.is_valid() == drfs.is_valid()
    assert ours.errors == drfs.errors
    assert {k: [e.code for e in v] for k, v in ours.errors.items()} == {
        k: [e.code for e in v] for k, v in drfs.errors.items()
    }
    assert (ours.validated_data if not ours.errors else None) == (
        drfs.validated_data if not drfs.errors else None
    )


def test_each_intake_serializer_binds_its_own_fields():
    first = DocumentJsonIntakeSerializer(data=payload())
    second = DocumentJsonIntakeSerializer(data=payload())

    for name, field in first.fields.items():
        assert field is not second.fields[name]
        assert field is not DocumentJsonIntakeSerializer._declared_fields[name]
        assert field.parent is first
        assert second.fields[name].parent is second
    # The declared prototypes are never bound.
    assert all(
        getattr(field, "parent", None) is None
        for field in DocumentJsonIntakeSerializer._declared_fields.values()
    )
