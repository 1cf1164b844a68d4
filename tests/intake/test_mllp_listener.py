"""The MLLP listener driven by python-hl7's own client over TCP and TLS."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import time

import pytest

from audit.models import AuditEvent
from casework.models import WorkItem, WorkItemCategory
from docflow.models import Document, DocumentStatus, PayloadVersion
from docflow.services import document_transition
from intake.mdm_samples import mdm_message
from intake.models import DocumentTypeMapping, SourceSystem
from tests.intake.conftest import ack_code, err_codes, raw_connection, send
from tests.samples import INVALID_CHECKSUM_NHS_NUMBER, pdf_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_t02_is_answered_aa_once_document_payload_and_audit_event_are_stored(
    listener, source
):
    content = pdf_bytes("Discharge letter")
    with listener.client() as client:
        ack = send(client, mdm_message(unique_id="DOC-1", content=content))
    assert ack_code(ack) == "AA"
    document = Document.objects.get()
    assert document.source_system == "mllp:rx1-engine"
    assert document.idempotency_key == "DOC-1"
    assert document.sending_organisation == source.sending_organisation
    assert document.nhs_number == "9990000018"
    assert document.patient_family_name == "Testpatient"
    assert document.patient_given_names == "Alex"
    assert str(document.patient_birth_date) == "1950-03-01"
    assert document.patient_gender == "Female"
    assert document.mrn == "633"
    assert document.destination_ods_code == "A81001"
    assert document.document_type == "discharge_summary"
    assert document.sender_person == "Dr Jo Example"
    assert document.sender_department == "Respiratory medicine"
    assert str(document.event_date) == "2026-01-10"
    version = PayloadVersion.objects.get(document=document)
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert AuditEvent.objects.filter(
        action="document.submitted", target_id=str(document.public_id)
    ).exists()
    assert str(document.public_id) in str(ack.extract_field("MSA", 1, 3))


def test_one_connection_carries_many_messages_and_escapes_are_decoded(listener, source):
    with listener.client() as client:
        first = send(client, mdm_message(unique_id="DOC-A", family_name="O\\T\\Brien"))
        second = send(client, mdm_message(unique_id="DOC-B"))
    assert [ack_code(first), ack_code(second)] == ["AA", "AA"]
    assert Document.objects.get(idempotency_key="DOC-A").patient_family_name == (
        "O&Brien"
    )


def test_text_document_type_is_mapped_through_the_admin_table(listener, source):
    DocumentTypeMapping.objects.create(
        source_system=source, text="Clinic Letter  (OP)", document_type="clinic_letter"
    )
    with listener.client() as client:
        mapped = send(
            client,
            mdm_message(unique_id="DOC-T", document_type="CL^clinic letter (op)"),
        )
        unmapped = send(
            client, mdm_message(unique_id="DOC-U", document_type="XX^Mystery letter")
        )
    assert ack_code(mapped) == "AA"
    assert Document.objects.get(idempotency_key="DOC-T").document_type == (
        "clinic_letter"
    )
    assert ack_code(unmapped) == "AE"
    assert err_codes(unmapped) == {("document_type", "invalid_choice")}


def test_every_field_error_is_answered_ae_with_the_api_codes_and_nothing_stored(
    listener, source
):
    with listener.client() as client:
        bad_patient = send(
            client,
            mdm_message(
                unique_id="DOC-2",
                nhs_number=INVALID_CHECKSUM_NHS_NUMBER,
                birth_date="20990101",
                practice="not an ods",
                gender="Q",
            ),
        )
        no_content = send(
            client,
            mdm_message(
                unique_id="DOC-3",
                obx="OBX|1|RP|DOC^Document||http://example.invalid/doc.pdf||||||F",
            ),
        )
        unsafe = send(
            client,
            mdm_message(unique_id="DOC-4", content=b"MZ\x90\x00" + b"\x00" * 400),
        )
    assert ack_code(bad_patient) == "AE"
    codes = err_codes(bad_patient)
    assert ("nhs_number", "nhs_number_checksum") in codes or any(
        field == "nhs_number" for field, _ in codes
    )
    assert {field for field, _ in codes} >= {
        "nhs_number",
        "patient_birth_date",
        "destination_ods_code",
        "patient_gender",
    }
    assert err_codes(no_content) == {("content", "pointer_refused")}
    assert ack_code(unsafe) == "AE"
    assert [field for field, _ in err_codes(unsafe)] == ["content"]
    assert Document.objects.count() == 0
    assert PayloadVersion.objects.count() == 0


def test_err_codes_are_those_of_the_api_problem_details(listener, source, api_client):
    from tests.samples import intake_json_body

    problem = api_client.post(
        "/api/v1/documents",
        intake_json_body(nhs_number=INVALID_CHECKSUM_NHS_NUMBER),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    ).json()
    with listener.client() as client:
        ack = send(
            client,
            mdm_message(unique_id="DOC-5", nhs_number=INVALID_CHECKSUM_NHS_NUMBER),
        )
    api_codes = {(e["field"], e["code"]) for e in problem["errors"]}
    assert err_codes(ack) == api_codes


def test_duplicate_resend_is_aa_with_one_document(listener, source):
    message = mdm_message(unique_id="DOC-6", content=pdf_bytes("once"))
    with listener.client() as client:
        first = send(client, message)
        again = send(client, message)
    assert [ack_code(first), ack_code(again)] == ["AA", "AA"]
    assert Document.objects.filter(idempotency_key="DOC-6").count() == 1


def test_same_id_with_other_content_and_no_t10_is_ae(listener, source):
    with listener.client() as client:
        send(client, mdm_message(unique_id="DOC-7", content=pdf_bytes("first")))
        other = send(client, mdm_message(unique_id="DOC-7", content=pdf_bytes("x")))
    assert ack_code(other) == "AE"
    assert err_codes(other) == {("idempotency_key", "idempotency_conflict")}
    assert Document.objects.count() == 1


def test_t10_links_a_corrected_version_once(listener, source):
    corrected = mdm_message(
        trigger="T10",
        unique_id="DOC-8",
        control_id="C-2",
        content=pdf_bytes("corrected"),
    )
    with listener.client() as client:
        send(client, mdm_message(unique_id="DOC-8", content=pdf_bytes("first")))
        ack = send(client, corrected)
        again = send(client, corrected)
    assert [ack_code(ack), ack_code(again)] == ["AA", "AA"]
    original = Document.objects.get(idempotency_key="DOC-8")
    [new] = Document.objects.filter(replaces=original)
    assert new.sending_organisation == original.sending_organisation
    assert (
        PayloadVersion.objects.get(document=new).sha256
        == hashlib.sha256(pdf_bytes("corrected")).hexdigest()
    )
    original.refresh_from_db()
    # Not yet sent: the replaced version does not go as well.
    assert original.status == DocumentStatus.CANCELLED
    assert Document.objects.count() == 2


def test_t03_before_sending_cancels_the_document(listener, source):
    with listener.client() as client:
        send(client, mdm_message(unique_id="DOC-9"))
        ack = send(client, mdm_message(trigger="T03", unique_id="DOC-9"))
    assert ack_code(ack) == "AA"
    document = Document.objects.get(idempotency_key="DOC-9")
    assert document.status == DocumentStatus.CANCELLED
    assert not WorkItem.objects.filter(document=document).exists()


def test_t11_after_sending_opens_one_work_item_for_recall(listener, source):
    with listener.client() as client:
        send(client, mdm_message(unique_id="DOC-10"))
    document = Document.objects.get(idempotency_key="DOC-10")
    for transition in ("mark_prepared", "claim_for_sending", "mark_received"):
        document = document_transition(document=document, transition=transition)
    with listener.client() as client:
        ack = send(client, mdm_message(trigger="T11", unique_id="DOC-10"))
        again = send(client, mdm_message(trigger="T11", unique_id="DOC-10"))
    assert [ack_code(ack), ack_code(again)] == ["AA", "AA"]
    document.refresh_from_db()
    assert document.status == DocumentStatus.RECEIVED
    [item] = WorkItem.objects.filter(document=document)
    assert item.category == WorkItemCategory.CANCEL_AFTER_SENDING
    # The practice's later report does not close it: a person decides.
    document = document_transition(document=document, transition="mark_delivered")
    from casework.services import work_item_sync_for_document

    work_item_sync_for_document(document=document)
    item.refresh_from_db()
    assert item.status == "open"


def test_other_events_and_unknown_senders_are_answered_ar(listener, source):
    with listener.client() as client:
        other = send(client, mdm_message(trigger="T01", unique_id="DOC-11"))
        stranger = send(client, mdm_message(unique_id="DOC-12", facility="ZZ9"))
    assert ack_code(other) == "AR"
    assert ack_code(stranger) == "AR"
    assert Document.objects.count() == 0


def test_a_change_to_the_source_system_is_seen_by_the_next_message(listener, source):
    """The listener keeps the source it loaded only while its row is unchanged."""
    with listener.client() as client:
        first = send(client, mdm_message(unique_id="DOC-20"))
        source.certificate_sha256 = "ab" * 32
        source.save()
        needs_certificate = send(client, mdm_message(unique_id="DOC-21"))
        source.certificate_sha256 = ""
        source.is_active = False
        source.save()
        deactivated = send(client, mdm_message(unique_id="DOC-22"))
        source.is_active = True
        source.save()
        again = send(client, mdm_message(unique_id="DOC-23"))
        source.sending_organisation.name = "Renamed Hospitals"
        source.sending_organisation.save()
        renamed = send(client, mdm_message(unique_id="DOC-24"))
    assert [ack_code(a) for a in (first, needs_certificate, deactivated)] == [
        "AA",
        "AR",
        "AR",
    ]
    assert "certificate" in str(needs_certificate.segment("MSA")(3))
    assert ack_code(again) == "AA"
    assert ack_code(renamed) == "AA"
    assert set(Document.objects.values_list("idempotency_key", flat=True)) == {
        "DOC-20",
        "DOC-23",
        "DOC-24",
    }


def test_tls_with_the_sources_client_certificate_is_accepted(listener, source):
    certificate = listener.ca.issue_cert("rx1-engine.example.nhs.uk")
    der = certificate.cert_chain_pems[0].bytes()
    import ssl

    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(der.decode())).hexdigest()
    SourceSystem.objects.filter(pk=source.pk).update(
        certificate_sha256=":".join(
            fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)
        ).upper()
    )
    with listener.tls_client(certificate=certificate) as client:
        ack = send(client, mdm_message(unique_id="DOC-13"))
    assert ack_code(ack) == "AA"
    other = listener.ca.issue_cert("someone-else.example")
    with listener.tls_client(certificate=other) as client:
        wrong = send(client, mdm_message(unique_id="DOC-14"))
    with listener.tls_client(certificate=None) as client:
        none = send(client, mdm_message(unique_id="DOC-15"))
    with listener.client() as client:
        plain = send(client, mdm_message(unique_id="DOC-16"))
    assert [ack_code(wrong), ack_code(none), ack_code(plain)] == ["AR"] * 3
    assert list(Document.objects.values_list("idempotency_key", flat=True)) == [
        "DOC-13"
    ]


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, TimeoutError):
        return True


def test_bad_framing_oversize_and_slow_senders_are_closed_alone(listener, source):
    with listener.client() as healthy:
        assert ack_code(send(healthy, mdm_message(unique_id="DOC-17"))) == "AA"
        broken = raw_connection(listener.port)
        broken.sendall(b"MSH|no start block\x1c\r")
        oversized = raw_connection(listener.port)
        with contextlib.suppress(OSError):
            # The listener may close while the 3 MB are still arriving.
            oversized.sendall(b"\x0b" + b"A" * 3_000_000)
        slow = raw_connection(listener.port)
        slow.sendall(b"\x0bMSH|^~\\&|EPR")
        started = time.monotonic()
        assert _closed(broken)
        assert _closed(oversized)
        assert _closed(slow)
        assert time.monotonic() - started < 9
        # The healthy connection goes on as if nothing happened.
        assert ack_code(send(healthy, mdm_message(unique_id="DOC-18"))) == "AA"
        idle = raw_connection(listener.port)
        assert _closed(idle)
    for sock in (broken, oversized, slow, idle):
        sock.close()
    assert Document.objects.count() == 2


def test_base64_in_obx_is_decoded_exactly(listener, source):
    content = pdf_bytes("exact bytes")
    obx = (
        "OBX|1|ED|DOC^Document||^application^pdf^Base64^"
        + base64.b64encode(content).decode()
        + "||||||F"
    )
    with listener.client() as client:
        assert ack_code(send(client, mdm_message(unique_id="DOC-19", obx=obx))) == "AA"
    version = PayloadVersion.objects.get()
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert version.media_type == "application/pdf"
