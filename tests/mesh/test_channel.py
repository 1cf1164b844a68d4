"""The MESH channel end to end against NHS England's mesh-sandbox over HTTPS: send,
chunking, reports, ITK3 acknowledgements, and no duplicate messages."""

from __future__ import annotations

from django.utils import timezone

from audit.models import AuditEvent
from casework.models import ACTIVE_STATUSES, WorkItem
from docflow.models import Channel, DocumentStatus
from docflow.services import document_transition
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import attachment_of, ready_document
from tests.samples import VALID_NHS_NUMBER, pdf_bytes
from transmissions import tasks
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.demo_practice import answer_waiting
from transmissions.channels.mesh.inbox import mesh_inbox_poll
from transmissions.engine.claims import document_claim
from transmissions.models import (
    MeshEndpointLookup,
    MeshInboxMessage,
    MeshInboxOutcome,
    Transmission,
    TransmissionState,
)
from transmissions.pipeline.sending import SendOutcome, document_send
from transmissions.pipeline.settling import sending_stuck_mark_unknown

S = DocumentStatus


def _send(document) -> Transmission:
    result = document_send(document_id=document.pk)
    assert result.outcome == SendOutcome.POSTED, result
    return Transmission.objects.get(document=document)


def _poll(mailbox) -> dict:
    return mesh_inbox_poll(mailbox_id=mailbox.pk).outcomes


def _active_item(document) -> WorkItem:
    return WorkItem.objects.select_related("bucket").get(
        document=document, status__in=ACTIVE_STATUSES
    )


def test_send_ends_accepted_through_the_practices_acknowledgements(
    mesh, practice, our_inbox
):
    document = ready_document(mesh)

    transmission = _send(document)

    document.refresh_from_db()
    assert document.status == S.DELIVERED
    assert transmission.channel == Channel.MESH
    assert transmission.state == TransmissionState.POSTED
    assert transmission.route_reason == "profile"
    assert transmission.recipient_mailbox == mesh_sandbox.GP_MAILBOX
    assert transmission.workflow_id == mesh_sandbox.WORKFLOW
    # The local id names the document and the send, never the patient.
    assert transmission.idempotency_key == f"{document.public_id}.1"
    message = practice.take()
    assert message.message_id == transmission.external_id
    assert message.local_id == transmission.idempotency_key
    assert message.workflow_id == mesh_sandbox.WORKFLOW
    assert VALID_NHS_NUMBER not in message.local_id + message.subject
    assert attachment_of(message) == pdf_bytes()
    assert itk3.message_header_id(message.content) == str(transmission.public_id)

    practice.answer(message, itk3.INFRASTRUCTURE_OK)
    assert _poll(mesh) == {MeshInboxOutcome.APPLIED: 1}
    document.refresh_from_db()
    transmission.refresh_from_db()
    # Filed, but the business acknowledgement is still to come.
    assert document.status == S.DELIVERED
    assert transmission.mesh_status == "infrastructure_ack"

    practice.answer(message, itk3.PATIENT_KNOWN)
    assert _poll(mesh) == {MeshInboxOutcome.APPLIED: 1}

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.ACCEPTED
    assert transmission.state == TransmissionState.FINAL
    assert transmission.status_code == 30001
    assert not WorkItem.objects.filter(document=document).exists()
    # Recorded, then acknowledged: our inbox is empty.
    assert our_inbox.inbox() == []
    assert MeshInboxMessage.objects.filter(acknowledged_at__isnull=True).count() == 0
    actions = list(
        AuditEvent.objects.filter(target_id=str(document.public_id))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    for action in ("transmission.routed", "transmission.posted", "transmission.final"):
        assert action in actions
    routed = AuditEvent.objects.get(
        target_id=str(document.public_id), action="transmission.routed"
    )
    assert routed.data["channel"] == "mesh"
    assert routed.data["reason"] == "profile"


def test_payload_larger_than_the_chunk_size_goes_in_chunks(
    mesh_db, practice, sandbox, settings
):
    settings.DOCFLOW_MESH_CHUNK_SIZE = 16 * 1024
    content = pdf_bytes("Large clinic letter", pad_to=80 * 1024)
    document = ready_document(mesh_db, content=content)

    transmission = _send(document)

    details = sandbox.admin(
        "GET", f"/messageexchange/admin/message/{transmission.external_id}"
    ).json()
    assert details["chunk_count"] >= 5
    message = practice.take()
    assert attachment_of(message) == content
    document.refresh_from_db()
    assert document.status == S.DELIVERED


def test_non_delivery_report_makes_the_document_undelivered_with_a_work_item(
    mesh, sandbox, our_inbox
):
    document = ready_document(mesh)
    transmission = _send(document)

    sandbox.admin(
        "POST",
        "/messageexchange/admin/report",
        json={
            "mailbox_id": mesh_sandbox.OUR_MAILBOX,
            "code": "14",
            "description": "Message not collected by recipient after 5 days",
            "workflow_id": mesh_sandbox.WORKFLOW,
            "local_id": transmission.idempotency_key,
            "status": "undeliverable",
            "linked_message_id": transmission.external_id,
        },
    )
    # The scheduled task: every inbox, then tracking that is due.
    assert tasks.mesh_poll_inboxes() == "X26ABC1: {'applied': 1}"

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.UNDELIVERED
    assert document.status_reason == "NDR"
    assert transmission.state == TransmissionState.FINAL
    assert transmission.mesh_status == "undeliverable"
    item = _active_item(document)
    assert item.category == "undelivered"
    assert item.reason_code == "NDR"
    assert item.bucket.key == "delivery"
    assert our_inbox.inbox() == []
    # The same report again (an acknowledgement lost) changes nothing.
    record = MeshInboxMessage.objects.get(transmission=transmission)
    assert record.linked_message_id == transmission.external_id
    assert record.acknowledged_at is not None


def test_other_error_report_opens_a_work_item_for_its_code(mesh, sandbox):
    document = ready_document(mesh)
    transmission = _send(document)

    sandbox.admin(
        "POST",
        "/messageexchange/admin/report",
        json={
            "mailbox_id": mesh_sandbox.OUR_MAILBOX,
            "code": "EPL-151",
            "description": "No mailbox matched",
            "workflow_id": mesh_sandbox.WORKFLOW,
            "status": "error",
            "linked_message_id": transmission.external_id,
        },
    )
    _poll(mesh)

    document.refresh_from_db()
    assert document.status == S.SYSTEM_ERROR
    item = _active_item(document)
    assert item.category == "system_error"
    assert item.reason_code == "MESH-EPL-151"
    assert item.bucket.key == "routing"


def test_patient_not_known_is_a_clinical_workflow_rejection(mesh, practice):
    document = ready_document(mesh)
    transmission = _send(document)

    practice.answer(practice.take(), itk3.PATIENT_NOT_KNOWN)
    _poll(mesh)

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.REJECTED
    assert document.status_reason == "ITK-30002"
    assert transmission.rejection_code == "ITK-30002"
    assert transmission.state == TransmissionState.FINAL
    item = _active_item(document)
    assert item.category == "rejection"
    assert item.bucket.key == "clinical"
    assert item.is_clinical
    assert item.reason_title == "Patient not known at this practice"

    # Sent again after the person's decision: a new message, never a Connect resend.
    document_transition(document=document, transition="requeue", reason="resend")
    assert tasks.resend_document(document.pk) == SendOutcome.POSTED
    again = Transmission.objects.filter(document=document).latest("created_at")
    assert again.pk != transmission.pk
    assert again.idempotency_key == f"{document.public_id}.2"
    assert practice.inbox() == [again.external_id]


def test_duplicate_acknowledgement_is_a_rejection_to_check(mesh, practice):
    document = ready_document(mesh)
    _send(document)

    practice.answer(practice.take(), "20007")
    _poll(mesh)

    document.refresh_from_db()
    assert document.status == S.REJECTED
    assert _active_item(document).reason_title == "Duplicate message"


def test_sending_twice_produces_one_mesh_message(mesh_db, practice):
    document = ready_document(mesh_db)

    first = document_send(document_id=document.pk)
    second = tasks.send_document(document.pk)

    assert first.outcome == SendOutcome.POSTED
    assert second == SendOutcome.NOT_READY
    assert len(practice.inbox()) == 1
    assert Transmission.objects.filter(document=document).count() == 1


def test_lost_answer_is_settled_by_local_id_without_a_second_message(
    mesh_db, practice, settings
):
    """The upload reached MESH but the worker died before recording it."""
    from transmissions.channels.mesh.connections import mesh_client_for
    from transmissions.channels.mesh.sending import mesh_message

    document = ready_document(mesh_db)
    claimed_document, transmission, payload = document_claim(
        document.pk,
        channel=Channel.MESH,
        new_key=f"{document.public_id}.1",
        fields={
            "workflow_id": mesh_sandbox.WORKFLOW,
            "recipient_mailbox": mesh_sandbox.GP_MAILBOX,
        },
    )
    claimed_document.sending_organisation = mesh_db.sending_organisation
    with mesh_client_for(mesh_db) as client:
        message_id = client.send(
            recipient=mesh_sandbox.GP_MAILBOX,
            content=mesh_message(claimed_document, transmission, payload, mesh_db),
            workflow_id=mesh_sandbox.WORKFLOW,
            local_id=transmission.idempotency_key,
            filename="lost.json",
        )
    settings.DOCFLOW_SENDING_TIMEOUT_SECONDS = 0
    assert sending_stuck_mark_unknown() == [document.pk]

    assert tasks.settle_outcome_unknown(document.pk) == "found"

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.DELIVERED
    assert transmission.external_id == message_id
    assert tasks.send_document(document.pk) == SendOutcome.NOT_READY
    assert practice.inbox() == [message_id]


def test_upload_that_never_arrived_is_sent_again_under_the_same_local_id(
    mesh_db, practice, settings
):
    document = ready_document(mesh_db)
    document_claim(
        document.pk,
        channel=Channel.MESH,
        new_key=f"{document.public_id}.1",
        fields={"workflow_id": mesh_sandbox.WORKFLOW},
    )
    settings.DOCFLOW_SENDING_TIMEOUT_SECONDS = 0
    sending_stuck_mark_unknown()

    assert tasks.settle_outcome_unknown(document.pk) == "absent"
    document.refresh_from_db()
    assert document.status == S.READY
    assert practice.inbox() == []

    assert tasks.send_document(document.pk) == SendOutcome.POSTED
    [transmission] = Transmission.objects.filter(document=document)
    assert transmission.idempotency_key == f"{document.public_id}.1"
    assert practice.inbox() == [transmission.external_id]


def test_practice_without_a_mailbox_for_the_workflow_is_held(mesh_db):
    mesh_db.default_workflow_id = "GPCONNECT_SEND_DOCUMENT"
    mesh_db.save(update_fields=["default_workflow_id"])
    document = ready_document(mesh_db)

    result = document_send(document_id=document.pk)

    assert result.outcome == SendOutcome.HELD
    document.refresh_from_db()
    assert document.status == S.HELD
    assert _active_item(document).bucket.key == "routing"
    assert not Transmission.objects.filter(document=document).exists()


def test_workflow_follows_the_document_type_and_the_demo_practice_answers(
    mesh, practice
):
    mesh.default_workflow_id = "GPCONNECT_SEND_DOCUMENT"
    mesh.workflow_ids = {"clinic_letter": mesh_sandbox.WORKFLOW}
    mesh.save(update_fields=["default_workflow_id", "workflow_ids"])
    document = ready_document(mesh, document_type="clinic_letter")

    transmission = _send(document)

    assert transmission.workflow_id == mesh_sandbox.WORKFLOW
    assert answer_waiting(practice.client, business_code=itk3.PATIENT_KNOWN) == 1
    assert _poll(mesh) == {MeshInboxOutcome.APPLIED: 2}
    document.refresh_from_db()
    assert document.status == S.ACCEPTED


def test_timeout_after_the_upload_is_settled_by_local_id_with_one_message(
    mesh_db, practice, sandbox, settings
):
    """The upload reaches MESH and its answer is lost: the outcome is unknown, never
    sent again blindly, and tracking the local id finds the one message."""
    document = ready_document(mesh_db, content=pdf_bytes("Letter", pad_to=20_000))
    MeshEndpointLookup.objects.create(
        ods_code=mesh_sandbox.GP_ODS_CODE,
        workflow_id=mesh_sandbox.WORKFLOW,
        mailbox_id=mesh_sandbox.GP_MAILBOX,
        looked_up_at=timezone.now(),
    )
    proxy = mesh_sandbox.AnswerLosingProxy(
        int(sandbox.url.rsplit(":", 1)[1]), after_bytes=8_000
    )
    settings.DOCFLOW_MESH_BASE_URL = f"https://127.0.0.1:{proxy.port}"
    settings.DOCFLOW_MESH_TIMEOUTS = (5.0, 1.0)
    try:
        result = document_send(document_id=document.pk)
    finally:
        proxy.close()

    assert result.outcome == SendOutcome.OUTCOME_UNKNOWN
    document.refresh_from_db()
    assert document.status == S.OUTCOME_UNKNOWN
    assert document.status_reason == "TIMEOUT_AFTER_SEND"
    assert _active_item(document).category == "outcome_unknown"
    # Not even the task delivered twice sends while the outcome is unknown.
    assert tasks.send_document(document.pk) == SendOutcome.NOT_READY
    [message_id] = practice.inbox()

    settings.DOCFLOW_MESH_BASE_URL = sandbox.url
    assert tasks.settle_outcome_unknown(document.pk) == "found"

    document.refresh_from_db()
    assert document.status == S.DELIVERED
    assert not WorkItem.objects.filter(
        document=document, status__in=ACTIVE_STATUSES
    ).exists()
    [transmission] = Transmission.objects.filter(document=document)
    assert transmission.external_id == message_id
    assert transmission.attempts == 1
    assert practice.inbox() == [message_id]
