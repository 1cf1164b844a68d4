"""Intake, idempotency and lifecycle services: what they store and what they audit."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import zipfile

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from docflow.models import Document, DocumentStatus, PayloadStage, PayloadVersion
from docflow.payloads.store import payload_blob_read
from docflow.services import (
    DocumentError,
    IdempotencyConflict,
    IntakeRefused,
    TransitionRefused,
    document_cancel,
    document_submit,
    document_transition,
)
from docflow.validation import CONNECT_LENGTH_LIMITS
from tests.factories import (
    SendingOrganisationFactory,
    UserFactory,
    make_submission,
    submit_document,
)
from tests.samples import (
    HTML_LETTER,
    INVALID_CHECKSUM_NHS_NUMBER,
    VALID_NHS_NUMBER,
    docm_bytes,
    exe_bytes,
    pdf_bytes,
    png_bytes,
)

pytestmark = pytest.mark.django_db

S = DocumentStatus
PATIENT_FAMILY_NAME = "Zzyzxpatient"
PATIENT_GIVEN_NAMES = "Quillon"
PATIENT_BIRTH_DATE = datetime.date(1947, 6, 23)
PATIENT_MRN = "MRN7731"
TEST_KEY_ID = "ktest"
TEST_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def stored_files(payload_dir) -> list:
    return sorted(p for p in payload_dir.rglob("*") if p.is_file())


def submit(organisation=None, *, key="event-1", **overrides):
    return document_submit(
        sending_organisation=organisation or SendingOrganisationFactory(),
        source_system="epr",
        idempotency_key=key,
        submission=make_submission(**overrides),
        actor=None,
    )


def refusal(**overrides) -> IntakeRefused:
    with pytest.raises(IntakeRefused) as caught:
        submit(**overrides)
    return caught.value


def assert_nothing_stored(payload_dir) -> None:
    assert Document.objects.count() == 0
    assert PayloadVersion.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    assert stored_files(payload_dir) == []


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("letter.txt", "Dear Dr Example")
    return buffer.getvalue()


def tomorrow() -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=1)


# Intake: what a good submission stores.


def test_submit_creates_a_submitted_document_with_its_metadata():
    organisation = SendingOrganisationFactory(ods_code="RX9")

    document, created = submit(
        organisation, destination_ods_code=" a81002 ", urgent=True
    )

    assert created is True
    document.refresh_from_db()
    assert document.status == S.SUBMITTED
    assert document.sending_organisation == organisation
    assert document.source_system == "epr"
    assert document.idempotency_key == "event-1"
    assert document.destination_ods_code == "A81002"
    assert document.nhs_number == VALID_NHS_NUMBER
    assert document.urgent is True
    assert len(document.fingerprint) == 64


def queued() -> list[tuple[str, tuple]]:
    from django_q.models import OrmQ

    return [(row.task["func"], tuple(row.task["args"])) for row in OrmQ.objects.all()]


def test_submit_queues_preparation_in_the_same_transaction(
    django_capture_on_commit_callbacks,
):
    organisation = SendingOrganisationFactory(ods_code="RX9")

    # Nothing waits for a commit: the task row is written beside the document.
    with django_capture_on_commit_callbacks() as callbacks:
        document, _ = submit(organisation)

    assert callbacks == []
    assert queued() == [("transmissions.tasks.prepare_document", (document.pk,))]


def test_a_refused_submission_queues_nothing():
    organisation = SendingOrganisationFactory(ods_code="RX9")

    with pytest.raises(IntakeRefused):
        submit(organisation, destination_ods_code="not an ods code")

    assert queued() == []


def test_a_replay_queues_nothing_more():
    organisation = SendingOrganisationFactory(ods_code="RX9")
    document, _ = submit(organisation)

    replay, created = submit(organisation)

    assert (replay.pk, created) == (document.pk, False)
    assert queued() == [("transmissions.tasks.prepare_document", (document.pk,))]


def test_submit_normalises_a_spaced_nhs_number():
    document, _ = submit(nhs_number="999 000 0018")

    assert document.nhs_number == VALID_NHS_NUMBER


def test_submit_stores_the_original_payload_version_with_checksum_and_key(settings):
    settings.DOCFLOW_PAYLOAD_KEYS = f"{TEST_KEY_ID}:{TEST_KEY}"
    content = pdf_bytes("Original letter")

    document, _ = submit(content=content)

    [version] = PayloadVersion.objects.filter(document=document)
    assert version.stage == PayloadStage.ORIGINAL
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert version.size_bytes == len(content)
    assert version.media_type == "application/pdf"
    assert version.file_extension == "pdf"
    assert version.key_id == TEST_KEY_ID


def test_submitted_payload_decrypts_back_to_the_same_bytes(filesystem_payload_store):
    content = pdf_bytes("Round trip")

    document, _ = submit(content=content)

    version = document.payload_versions.get()
    assert (filesystem_payload_store / version.storage_name).is_file()
    assert (
        payload_blob_read(
            storage_name=version.storage_name, expected_sha256=version.sha256
        )
        == content
    )


def test_submit_writes_one_submitted_audit_event_without_patient_data():
    document, _ = submit(
        patient_family_name=PATIENT_FAMILY_NAME,
        patient_given_names=PATIENT_GIVEN_NAMES,
        patient_birth_date=PATIENT_BIRTH_DATE,
        mrn=PATIENT_MRN,
    )

    [event] = AuditEvent.objects.filter(target_id=str(document.public_id))
    assert event.action == "document.submitted"
    assert event.target_type == "document"
    assert event.data["destination_ods_code"] == "A81001"
    assert event.data["media_type"] == "application/pdf"
    serialised = json.dumps(event.data)
    for patient_detail in (
        VALID_NHS_NUMBER,
        PATIENT_FAMILY_NAME,
        PATIENT_GIVEN_NAMES,
        PATIENT_BIRTH_DATE.isoformat(),
        PATIENT_MRN,
    ):
        assert patient_detail not in serialised


def test_submit_records_the_api_client_as_the_actor(api_key):
    key, _ = api_key

    document, _ = document_submit(
        sending_organisation=key.sending_organisation,
        source_system=f"api:{key.prefix}",
        idempotency_key="evt",
        submission=make_submission(),
        actor=key,
    )

    event = AuditEvent.objects.get(target_id=str(document.public_id))
    assert (event.actor_kind, event.actor_id) == ("api_client", key.prefix)


# Intake: every validation rule, one at a time.

FIELD_ERRORS = [
    pytest.param(
        "nhs_number",
        {"nhs_number": INVALID_CHECKSUM_NHS_NUMBER},
        "nhs_number_checksum",
        id="nhs-checksum",
    ),
    pytest.param(
        "nhs_number", {"nhs_number": "99900000"}, "nhs_number_format", id="nhs-short"
    ),
    pytest.param(
        "nhs_number",
        {"nhs_number": "99900000AB"},
        "nhs_number_format",
        id="nhs-letters",
    ),
    pytest.param(
        "destination_ods_code",
        {"destination_ods_code": "A!"},
        "ods_code_format",
        id="ods-punctuation",
    ),
    pytest.param(
        "destination_ods_code",
        {"destination_ods_code": "A81001TOOLONG"},
        "ods_code_format",
        id="ods-too-long",
    ),
    pytest.param(
        "event_date", {"event_date": None}, "future_date", id="future-event-date"
    ),
    pytest.param(
        "patient_birth_date",
        {"patient_birth_date": None},
        "future_date",
        id="future-birth-date",
    ),
    pytest.param(
        "patient_birth_date",
        {"patient_birth_date": datetime.date(1850, 1, 1)},
        "too_early",
        id="implausible-birth-date",
    ),
    pytest.param(
        "document_type",
        {"document_type": "poem"},
        "invalid_choice",
        id="unknown-document-type",
    ),
    pytest.param(
        "patient_gender",
        {"patient_gender": "Robot"},
        "invalid_choice",
        id="unknown-gender",
    ),
]


@pytest.mark.parametrize(("field", "overrides", "code"), FIELD_ERRORS)
def test_invalid_field_is_refused_naming_only_that_field_and_stores_nothing(
    field, overrides, code, filesystem_payload_store
):
    # Future dates are computed at run time, not at collection time.
    overrides = {k: v if v is not None else tomorrow() for k, v in overrides.items()}

    refused = refusal(**overrides)

    assert set(refused.errors) == {field}
    assert code in [error_code for error_code, _ in refused.errors[field]]
    assert_nothing_stored(filesystem_payload_store)


@pytest.mark.parametrize(("field", "limit"), sorted(CONNECT_LENGTH_LIMITS.items()))
def test_each_connect_length_limit_refuses_one_character_more(
    field, limit, filesystem_payload_store
):
    max_length, connect_code = limit

    refused = refusal(**{field: "x" * (max_length + 1)})

    assert set(refused.errors) == {field}
    [(code, message)] = refused.errors[field]
    assert code == "too_long"
    assert connect_code in message
    assert_nothing_stored(filesystem_payload_store)


@pytest.mark.parametrize(("field", "limit"), sorted(CONNECT_LENGTH_LIMITS.items()))
def test_each_connect_length_limit_accepts_exactly_the_limit(field, limit):
    max_length, _ = limit

    document, created = submit(**{field: "x" * max_length})

    assert created is True
    document.refresh_from_db()
    assert getattr(document, field) == "x" * max_length


@pytest.mark.parametrize(
    ("field", "missing"),
    [
        ("nhs_number", ""),
        ("patient_family_name", ""),
        ("patient_birth_date", None),
        ("document_type", ""),
        ("description", ""),
        ("event_date", None),
        ("destination_ods_code", ""),
    ],
)
def test_missing_required_field_is_refused_and_stores_nothing(
    field, missing, filesystem_payload_store
):
    refused = refusal(**{field: missing})

    assert refused.errors == {field: [("required", "This field is required.")]}
    assert_nothing_stored(filesystem_payload_store)


def test_missing_idempotency_key_is_refused_and_stores_nothing(
    filesystem_payload_store,
):
    refused = refusal(key="")

    assert set(refused.errors) == {"idempotency_key"}
    assert_nothing_stored(filesystem_payload_store)


def test_every_problem_is_reported_in_one_refusal(filesystem_payload_store):
    refused = refusal(
        nhs_number=INVALID_CHECKSUM_NHS_NUMBER,
        destination_ods_code="?",
        event_date=tomorrow(),
        folder_name="x" * 51,
        content=b"",
    )

    assert set(refused.errors) == {
        "nhs_number",
        "destination_ods_code",
        "event_date",
        "folder_name",
        "content",
    }
    assert_nothing_stored(filesystem_payload_store)


# Intake: content judged by its bytes, not its name.

SPOOFED_CONTENT = [
    pytest.param(docm_bytes(), "pdf", "macro_enabled", id="docm-named-pdf"),
    pytest.param(exe_bytes(), "pdf", "executable", id="exe-named-pdf"),
    pytest.param(png_bytes(), "pdf", "type_mismatch", id="png-named-pdf"),
    pytest.param(b"", "pdf", "empty", id="empty-file"),
    pytest.param(zip_bytes(), "zip", "archive", id="zip-archive"),
]


@pytest.mark.parametrize(("content", "extension", "code"), SPOOFED_CONTENT)
def test_disallowed_or_disguised_content_is_refused_and_stores_nothing(
    content, extension, code, filesystem_payload_store
):
    refused = refusal(content=content, declared_extension=extension)

    assert set(refused.errors) == {"content"}
    [(error_code, _)] = refused.errors["content"]
    assert error_code == code
    assert_nothing_stored(filesystem_payload_store)


def test_each_kind_of_refused_content_has_its_own_code():
    codes = [param.values[2] for param in SPOOFED_CONTENT]

    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    ("content", "extension", "media_type"),
    [
        pytest.param(HTML_LETTER, "html", "text/html", id="html"),
        pytest.param(png_bytes(), "png", "image/png", id="png"),
        pytest.param(pdf_bytes(), "PDF", "application/pdf", id="pdf-upper-case"),
        pytest.param(pdf_bytes(), "", "application/pdf", id="pdf-without-name"),
    ],
)
def test_content_with_a_matching_name_is_accepted_with_its_sniffed_media_type(
    content, extension, media_type
):
    document, created = submit(content=content, declared_extension=extension)

    assert created is True
    version = document.payload_versions.get()
    assert version.media_type == media_type
    assert (
        payload_blob_read(
            storage_name=version.storage_name, expected_sha256=version.sha256
        )
        == content
    )


# Intake: idempotency.


def test_replay_with_same_key_and_content_returns_the_original_and_stores_nothing(
    filesystem_payload_store,
):
    organisation = SendingOrganisationFactory()
    original, first_created = submit(organisation, key="evt-7")
    files = stored_files(filesystem_payload_store)

    replay, created = submit(organisation, key="evt-7")

    assert first_created is True
    assert created is False
    assert replay.pk == original.pk
    assert Document.objects.count() == 1
    assert PayloadVersion.objects.count() == 1
    assert AuditEvent.objects.filter(action="document.submitted").count() == 1
    assert stored_files(filesystem_payload_store) == files


def test_replay_with_a_differently_spaced_nhs_number_is_still_a_replay():
    organisation = SendingOrganisationFactory()
    original, _ = submit(organisation, key="evt-8")

    replay, created = submit(organisation, key="evt-8", nhs_number="999-000-0018")

    assert (replay.pk, created) == (original.pk, False)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"content": pdf_bytes("Another letter")}, id="other-content"),
        pytest.param({"description": "Another letter"}, id="other-metadata"),
    ],
)
def test_same_key_for_a_different_document_is_a_conflict_and_stores_nothing(
    change, filesystem_payload_store
):
    organisation = SendingOrganisationFactory()
    original, _ = submit(organisation, key="evt-9")
    files = stored_files(filesystem_payload_store)

    with pytest.raises(IdempotencyConflict):
        submit(organisation, key="evt-9", **change)

    assert list(Document.objects.all()) == [original]
    assert PayloadVersion.objects.count() == 1
    assert AuditEvent.objects.count() == 1
    assert stored_files(filesystem_payload_store) == files


def test_same_key_from_another_source_system_is_a_new_document():
    organisation = SendingOrganisationFactory()
    first, _ = submit(organisation, key="evt-10")

    second, created = document_submit(
        sending_organisation=organisation,
        source_system="another-epr",
        idempotency_key="evt-10",
        submission=make_submission(),
    )

    assert created is True
    assert second.pk != first.pk


def test_a_replay_keeps_no_second_blob(filesystem_payload_store):
    organisation = SendingOrganisationFactory()
    original, _ = submit(organisation, key="evt-race")
    files = stored_files(filesystem_payload_store)

    replay, created = submit(organisation, key="evt-race")

    assert (replay.pk, created) == (original.pk, False)
    assert Document.objects.count() == 1
    assert AuditEvent.objects.count() == 1
    assert stored_files(filesystem_payload_store) == files


def test_a_conflicting_reuse_of_a_key_keeps_no_blob(filesystem_payload_store):
    organisation = SendingOrganisationFactory()
    submit(organisation, key="evt-race-2")
    files = stored_files(filesystem_payload_store)

    with pytest.raises(IdempotencyConflict):
        submit(organisation, key="evt-race-2", description="Another letter")

    assert Document.objects.count() == 1
    assert stored_files(filesystem_payload_store) == files


# Lifecycle services.


def test_transition_moves_the_document_and_audits_from_and_to():
    user = UserFactory()
    document = submit_document()

    moved = document_transition(
        document=document,
        transition="hold_before_send",
        reason="DESTINATION_UNKNOWN",
        actor=user,
    )

    assert moved.status == S.HELD
    document.refresh_from_db()
    assert document.status == S.HELD
    assert document.status_reason == "DESTINATION_UNKNOWN"
    event = AuditEvent.objects.get(action="document.hold_before_send")
    assert event.target_id == str(document.public_id)
    assert event.data["from"] == S.SUBMITTED
    assert event.data["to"] == S.HELD
    assert event.data["reason"] == "DESTINATION_UNKNOWN"
    assert (event.actor_kind, event.actor_id) == ("user", str(user.pk))


def test_transition_keeps_caller_data_but_never_lets_it_rewrite_the_edge():
    document = submit_document()

    document_transition(
        document=document,
        transition="hold_before_send",
        reason="DC01.21",
        data={"connect_code": "DC01.21", "from": "accepted", "to": "accepted"},
    )

    event = AuditEvent.objects.get(action="document.hold_before_send")
    assert event.data == {
        "connect_code": "DC01.21",
        "from": S.SUBMITTED,
        "to": S.HELD,
        "reason": "DC01.21",
    }


def test_transition_records_the_reason_in_the_history():
    document = submit_document()

    document_transition(
        document=document, transition="mark_prepared", reason="converted to PDF"
    )

    newest = document.history.order_by("-history_id").first()
    assert newest.status == S.READY
    assert newest.history_change_reason == "converted to PDF"


def test_transition_without_a_reason_records_the_transition_name_in_history():
    document = submit_document()

    document_transition(document=document, transition="mark_prepared")

    newest = document.history.order_by("-history_id").first()
    assert newest.history_change_reason == "mark_prepared"


def test_transitions_chain_through_the_send_path():
    document = submit_document()

    for transition in (
        "mark_prepared",
        "claim_for_sending",
        "mark_received",
        "mark_delivered",
        "mark_accepted",
    ):
        document = document_transition(document=document, transition=transition)

    document.refresh_from_db()
    assert document.status == S.ACCEPTED
    actions = list(
        AuditEvent.objects.filter(target_id=str(document.public_id)).values_list(
            "action", flat=True
        )
    )
    assert actions == [
        "document.submitted",
        "document.mark_prepared",
        "document.claim_for_sending",
        "document.mark_received",
        "document.mark_delivered",
        "document.mark_accepted",
    ]


@pytest.mark.parametrize(
    "transition", ["mark_accepted", "claim_for_sending", "delete", "no_such_thing"]
)
def test_illegal_transition_is_refused_and_writes_nothing(transition):
    document = submit_document()
    history_rows = document.history.count()
    events = AuditEvent.objects.count()

    with pytest.raises(TransitionRefused):
        document_transition(document=document, transition=transition, reason="x")

    document.refresh_from_db()
    assert document.status == S.SUBMITTED
    assert document.status_reason == ""
    assert document.history.count() == history_rows
    assert AuditEvent.objects.count() == events


def test_transition_uses_the_stored_state_not_a_stale_copy():
    document = submit_document()
    stale = Document.objects.get(pk=document.pk)
    document_transition(document=document, transition="mark_prepared")

    with pytest.raises(TransitionRefused):
        document_transition(document=stale, transition="mark_prepared")

    assert AuditEvent.objects.filter(action="document.mark_prepared").count() == 1


def test_cancel_with_a_reason_cancels_and_audits_it():
    user = UserFactory()
    document = submit_document()

    cancelled = document_cancel(
        document=document, reason="  Sent to the wrong practice  ", actor=user
    )

    assert cancelled.status == S.CANCELLED
    document.refresh_from_db()
    assert document.status == S.CANCELLED
    assert document.status_reason == "Sent to the wrong practice"
    event = AuditEvent.objects.get(action="document.cancel")
    assert event.data["reason"] == "Sent to the wrong practice"
    assert event.data["to"] == S.CANCELLED


@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_without_a_reason_is_refused_and_writes_nothing(reason):
    document = submit_document()

    with pytest.raises(DocumentError, match="reason"):
        document_cancel(document=document, reason=reason, actor=None)

    document.refresh_from_db()
    assert document.status == S.SUBMITTED
    assert not AuditEvent.objects.filter(action="document.cancel").exists()


def test_cancel_after_the_document_reached_connect_is_refused():
    document = submit_document()
    for transition in ("mark_prepared", "claim_for_sending", "mark_received"):
        document = document_transition(document=document, transition=transition)

    with pytest.raises(TransitionRefused):
        document_cancel(document=document, reason="Too late", actor=None)

    document.refresh_from_db()
    assert document.status == S.RECEIVED


def test_content_vetted_by_the_caller_is_not_read_again(monkeypatch):
    from docflow import services
    from docflow.uploads.media import vet_upload

    content = pdf_bytes()
    vetted = services.VettedContent(
        declared_extension="pdf", media=vet_upload(content, declared_extension="pdf")
    )

    def read_again(*args, **kwargs):
        raise AssertionError("the bytes were vetted a second time")

    monkeypatch.setattr(services, "vet_upload", read_again)
    document, created = submit(
        content=content, declared_extension="PDF", vetted_content=vetted
    )

    assert created
    assert document.payload_versions.get().media_type == "application/pdf"


def test_content_vetted_for_another_extension_is_vetted_again():
    from docflow.services import VettedContent
    from docflow.uploads.media import vet_upload

    content = pdf_bytes()
    vetted = VettedContent(
        declared_extension="pdf", media=vet_upload(content, declared_extension="pdf")
    )

    with pytest.raises(IntakeRefused) as refused:
        submit(content=content, declared_extension="html", vetted_content=vetted)

    assert [code for code, _ in refused.value.errors["content"]] == ["type_mismatch"]
