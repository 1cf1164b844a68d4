"""The inbox as NHS England specifies it, against the real mesh-sandbox with the
practice (and another organisation) driven by MESH clients: the whole inbox read
every poll, answers applied only from the mailbox the document went to, answers
that change nothing kept, and a send complete only on both acknowledgements."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine

from audit.models import AuditEvent
from casework.models import ACTIVE_STATUSES, WorkItem
from docflow.models import DocumentStatus
from docflow.selectors import document_timeline
from operations.models import Incident, IncidentKind
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import _connection, ready_document
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.client import InboxMessage, MeshMailboxClient
from transmissions.channels.mesh.conformance.acknowledgements import (
    mesh_unanswered_settle,
)
from transmissions.channels.mesh.conformance.quarantine import (
    QuarantineStateError,
    mesh_answer_quarantine,
    mesh_quarantined_answer_close,
    mesh_quarantined_content,
)
from transmissions.channels.mesh.inbox import mesh_inbox_poll
from transmissions.models import (
    MeshEndpointLookup,
    MeshInboxMessage,
    MeshInboxOutcome,
    MeshQuarantinedAnswer,
    Transmission,
    TransmissionState,
)
from transmissions.pipeline.sending import SendOutcome, document_send

S = DocumentStatus
OTHER_MAILBOX = "X26ABC3"  # the sandbox's mailbox of another organisation (X27)
ACK_WORKFLOW = f"{mesh_sandbox.WORKFLOW}_ACK"


def _send(document) -> Transmission:
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    return Transmission.objects.get(document=document)


def _answer_from(client: MeshMailboxClient, message, code: str, **kwargs) -> str:
    return client.send(
        recipient=mesh_sandbox.OUR_MAILBOX,
        content=itk3.response_message(
            response_to=kwargs.pop("response_to", None)
            or itk3.message_header_id(message.content),
            code=code,
            sender_mailbox=client.mailbox_id,
        ),
        workflow_id=ACK_WORKFLOW,
        local_id=f"ack-{code}",
        filename="response.json",
        content_type="application/fhir+json",
    )


@pytest.fixture
def other_organisation(sandbox):
    with MeshMailboxClient(_connection(sandbox, OTHER_MAILBOX)) as client:
        yield client


def _not_ours(practice, count: int) -> None:
    for n in range(count):
        practice.client.send(
            recipient=mesh_sandbox.OUR_MAILBOX,
            content=b"another application's message",
            workflow_id="TEST_WORKFLOW2",
            local_id=f"other-{n}",
            filename="other.dat",
        )


def _waiting(our_inbox) -> int:
    total, link = 0, None
    while True:
        ids, link = our_inbox.inbox_page(next_link=link)
        total += len(ids)
        if not link:
            return total


def test_600_messages_not_ours_never_hide_the_acknowledgements_behind_them(
    mesh, practice, our_inbox, settings
):
    settings.DOCFLOW_MESH_NOT_OURS = "keep"
    document = ready_document(mesh)
    transmission = _send(document)
    message = practice.take()
    _not_ours(practice, 600)
    practice.answer(message, itk3.INFRASTRUCTURE_OK)
    practice.answer(message, itk3.PATIENT_KNOWN)
    assert _waiting(our_inbox) == 602

    first = mesh_inbox_poll(mailbox_id=mesh.pk)

    document.refresh_from_db()
    assert document.status == S.ACCEPTED
    assert first.pages >= 2
    assert first.outcomes == {
        MeshInboxOutcome.NOT_OURS: 600,
        MeshInboxOutcome.APPLIED: 2,
    }
    assert MeshInboxMessage.objects.filter(transmission=transmission).count() == 2
    # Kept for their owner, recorded once: the inbox does not grow, and the next
    # poll downloads none of them again.
    assert _waiting(our_inbox) == 600
    second = mesh_inbox_poll(mailbox_id=mesh.pk)
    assert (second.outcomes, second.acknowledged) == ({}, 0)
    assert _waiting(our_inbox) == 600
    assert MeshInboxMessage.objects.filter(outcome="not_ours").count() == 600

    # Configured to acknowledge them after recording: the inbox empties.
    settings.DOCFLOW_MESH_NOT_OURS = "acknowledge"
    third = mesh_inbox_poll(mailbox_id=mesh.pk)
    assert third.acknowledged == 600
    assert _waiting(our_inbox) == 0


def test_not_ours_messages_are_recorded_and_acknowledged_by_default(
    mesh, practice, our_inbox
):
    _not_ours(practice, 3)

    poll = mesh_inbox_poll(mailbox_id=mesh.pk)

    assert poll.outcomes == {MeshInboxOutcome.NOT_OURS: 3}
    assert poll.acknowledged == 3
    assert our_inbox.inbox() == []
    recorded = MeshInboxMessage.objects.filter(outcome="not_ours")
    assert {row.sender_mailbox for row in recorded} == {mesh_sandbox.GP_MAILBOX}
    assert all(row.acknowledged_at for row in recorded)


def test_a_rejection_from_another_organisations_mailbox_changes_nothing_and_is_kept(
    mesh, practice, other_organisation, our_inbox
):
    document = ready_document(mesh)
    transmission = _send(document)
    message = practice.take()
    spoof = _answer_from(other_organisation, message, itk3.PATIENT_NOT_KNOWN)

    poll = mesh_inbox_poll(mailbox_id=mesh.pk)

    assert poll.outcomes == {MeshInboxOutcome.SUSPICIOUS: 1}
    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.DELIVERED
    assert transmission.state == TransmissionState.POSTED
    assert transmission.rejection_code == ""
    assert not WorkItem.objects.filter(document=document).exists()
    kept = MeshQuarantinedAnswer.objects.get(message_id=spoof)
    assert (kept.kind, kept.status, kept.sender_mailbox) == (
        "suspicious",
        "open",
        OTHER_MAILBOX,
    )
    assert kept.transmission == transmission
    assert kept.referenced_id == str(transmission.public_id)
    assert kept.response_code == itk3.PATIENT_NOT_KNOWN
    assert kept.workflow_id == ACK_WORKFLOW
    assert kept.bucket.key == "infrastructure"
    content = mesh_quarantined_content(quarantined=kept)
    assert itk3.parse_response(content).code == itk3.PATIENT_NOT_KNOWN
    incident = Incident.objects.get(kind=IncidentKind.MESH_ANSWER_SUSPICIOUS)
    assert incident.scope == f"mesh-sender:{OTHER_MAILBOX}"
    assert incident.details["last_answer"] == str(kept.public_id)
    assert AuditEvent.objects.filter(
        action="mesh.answer_quarantined", target_id=str(kept.public_id)
    ).exists()
    timeline = list(
        document_timeline(document=document).values_list("action", flat=True)
    )
    assert "transmission.mesh_answer_quarantined" in timeline
    # Kept first, then acknowledged: nothing is left in MESH, nothing lost.
    assert our_inbox.inbox() == []

    # The practice's own answer still counts.
    practice.answer(message, itk3.PATIENT_NOT_KNOWN)
    mesh_inbox_poll(mailbox_id=mesh.pk)
    document.refresh_from_db()
    assert document.status == S.REJECTED


def test_an_answer_from_a_mailbox_the_directory_names_for_the_practice_is_applied(
    mesh, practice, other_organisation
):
    document = ready_document(mesh)
    _send(document)
    message = practice.take()
    MeshEndpointLookup.objects.create(
        ods_code=mesh_sandbox.GP_ODS_CODE,
        workflow_id="TEST_WORKFLOW2",
        mailbox_id=OTHER_MAILBOX,
        looked_up_at=document.created_at,
    )
    _answer_from(other_organisation, message, itk3.PATIENT_NOT_KNOWN)

    assert mesh_inbox_poll(mailbox_id=mesh.pk).outcomes == {"applied": 1}
    document.refresh_from_db()
    assert document.status == S.REJECTED
    assert not MeshQuarantinedAnswer.objects.exists()


def test_unreadable_and_unmatched_answers_are_kept_with_an_audit_event(
    mesh, practice, our_inbox
):
    garbled = practice.client.send(
        recipient=mesh_sandbox.OUR_MAILBOX,
        content=b'{"resourceType": "Bundle", "entry": [',
        workflow_id=ACK_WORKFLOW,
        local_id="ack-garbled",
        filename="response.json",
    )
    stranger = str(uuid.uuid4())
    mistyped = practice.client.send(
        recipient=mesh_sandbox.OUR_MAILBOX,
        content=itk3.response_message(
            response_to=stranger,
            code=itk3.PATIENT_NOT_KNOWN,
            sender_mailbox=mesh_sandbox.GP_MAILBOX,
        ),
        workflow_id=ACK_WORKFLOW,
        local_id="ack-mistyped",
        filename="response.json",
    )

    poll = mesh_inbox_poll(mailbox_id=mesh.pk)

    assert poll.outcomes == {"unreadable": 1, "unmatched": 1}
    assert our_inbox.inbox() == []
    unreadable = MeshQuarantinedAnswer.objects.get(message_id=garbled)
    unmatched = MeshQuarantinedAnswer.objects.get(message_id=mistyped)
    assert (unreadable.kind, unreadable.local_id, unreadable.sender_mailbox) == (
        "unreadable",
        "ack-garbled",
        mesh_sandbox.GP_MAILBOX,
    )
    assert mesh_quarantined_content(quarantined=unreadable).startswith(b'{"resource')
    assert (unmatched.kind, unmatched.referenced_id, unmatched.response_code) == (
        "unmatched",
        stranger,
        itk3.PATIENT_NOT_KNOWN,
    )
    for kept in (unreadable, unmatched):
        assert kept.status == "open"
        assert kept.bucket.key == "infrastructure"
        assert kept.retain_until > kept.received_at + timedelta(days=365)
        event = AuditEvent.objects.get(
            action="mesh.answer_quarantined", target_id=str(kept.public_id)
        )
        assert event.data["message_id"] == kept.message_id
    # Encrypted at rest: the stored blob (a row or a file) is not the content.
    from docflow.payloads.blobstores import blob_locate

    _, blob = blob_locate(unmatched.content_storage_name)
    assert blob and stranger.encode() not in blob
    # Not suspicious: no incident for a practice's typing mistake.
    assert not Incident.objects.filter(kind=IncidentKind.MESH_ANSWER_SUSPICIOUS)


def test_business_acknowledgement_alone_leaves_the_document_delivered(mesh, practice):
    document = ready_document(mesh)
    transmission = _send(document)
    message = practice.take()

    practice.answer(message, itk3.PATIENT_KNOWN)
    mesh_inbox_poll(mailbox_id=mesh.pk)
    document.refresh_from_db()
    assert document.status == S.DELIVERED
    waiting = AuditEvent.objects.get(
        action="transmission.mesh_answer", target_id=str(document.public_id)
    )
    assert waiting.data["itk3_code"] == itk3.PATIENT_KNOWN
    assert waiting.data["waiting_for"] == [itk3.INFRASTRUCTURE_OK]

    # Either order: the infrastructure acknowledgement completes it.
    practice.answer(message, itk3.INFRASTRUCTURE_OK)
    mesh_inbox_poll(mailbox_id=mesh.pk)
    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.ACCEPTED
    assert transmission.state == TransmissionState.FINAL
    codes = [
        event.data["itk3_code"]
        for event in AuditEvent.objects.filter(
            action="transmission.mesh_answer", target_id=str(document.public_id)
        ).order_by("sequence")
    ]
    assert codes == [itk3.PATIENT_KNOWN, itk3.INFRASTRUCTURE_OK]


def test_no_business_acknowledgement_by_the_deadline_makes_it_undelivered_once(
    mesh, practice, settings
):
    document = ready_document(mesh)
    transmission = _send(document)
    practice.answer(practice.take(), itk3.INFRASTRUCTURE_OK)
    mesh_inbox_poll(mailbox_id=mesh.pk)
    transmission.refresh_from_db()
    posted = transmission.posted_at

    with time_machine.travel(posted + timedelta(days=19, hours=23), tick=False):
        assert mesh_unanswered_settle() == []
    document.refresh_from_db()
    assert document.status == S.DELIVERED

    with time_machine.travel(posted + timedelta(days=20, minutes=1), tick=False):
        [settled] = mesh_unanswered_settle()
        assert mesh_unanswered_settle() == []  # once only

    assert settled.pk == transmission.pk
    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.UNDELIVERED
    assert document.status_reason == "MESH-NO-ANSWER"
    assert transmission.state == TransmissionState.FINAL
    [item] = WorkItem.objects.filter(document=document, status__in=ACTIVE_STATUSES)
    assert item.category == "undelivered"
    assert item.reason_code == "MESH-NO-ANSWER"
    event = AuditEvent.objects.get(
        target_id=str(document.public_id), action="document.mark_undelivered"
    )
    assert event.data["missing_acknowledgements"] == [itk3.PATIENT_KNOWN]


def test_the_deadline_is_a_setting(mesh, practice, settings):
    settings.DOCFLOW_MESH_ANSWER_DEADLINE_DAYS = 2
    document = ready_document(mesh)
    transmission = _send(document)

    with time_machine.travel(transmission.posted_at + timedelta(days=2, seconds=1)):
        assert [t.pk for t in mesh_unanswered_settle()] == [transmission.pk]
    document.refresh_from_db()
    assert document.status == S.UNDELIVERED


def _kept(mailbox, message_id: str, kind: str = "unmatched") -> MeshQuarantinedAnswer:
    return mesh_answer_quarantine(
        mailbox=mailbox,
        message=InboxMessage(
            message_id=message_id,
            message_type="DATA",
            workflow_id=ACK_WORKFLOW,
            sender=mesh_sandbox.GP_MAILBOX,
            local_id="ack-1",
            subject="",
            linked_message_id="",
            status_code="",
            status_event="",
            status_description="",
            status_success=None,
            content=b"{}",
        ),
        kind=kind,
        problem="names no send of ours",
    )


def test_a_person_matches_or_dismisses_a_kept_answer_once_with_a_reason(mesh_db):
    document = ready_document(mesh_db)
    transmission = _send(document)
    kept = _kept(mesh_db, "M-1")
    other = _kept(mesh_db, "M-2")

    with pytest.raises(ValueError, match="reason"):
        mesh_quarantined_answer_close(
            quarantined=kept, status="dismissed", reason=" ", actor=None
        )
    matched = mesh_quarantined_answer_close(
        quarantined=kept,
        status="matched",
        reason="Practice phoned: mistyped id, it is this letter",
        actor=None,
        transmission=transmission,
    )
    dismissed = mesh_quarantined_answer_close(
        quarantined=other, status="dismissed", reason="Test message", actor=None
    )

    assert (matched.status, matched.transmission) == ("matched", transmission)
    assert dismissed.status == "dismissed" and dismissed.closed_at
    assert AuditEvent.objects.filter(
        action="mesh.answer_matched", target_id=str(kept.public_id)
    ).exists()
    with pytest.raises(QuarantineStateError):
        mesh_quarantined_answer_close(
            quarantined=kept, status="dismissed", reason="again", actor=None
        )
