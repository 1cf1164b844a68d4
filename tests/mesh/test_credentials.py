"""Refused MESH credentials halt the organisation, as over Connect, against the
real mesh-sandbox with a wrong mailbox password: one halt, one incident, no
per-document holds or work items, documents waiting in ``ready``; once the
password is fixed and outbound resumed, they are sent and accepted."""

from __future__ import annotations

from audit.models import AuditEvent
from casework.models import WorkItem
from docflow.models import DocumentStatus
from operations.models import Incident, IncidentKind, IncidentState
from operations.services.surges import outbound_halts_watch
from tests.mesh.conftest import ready_document
from tests.samples import VALID_NHS_NUMBER
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.inbox import mesh_inbox_poll
from transmissions.channels.mesh.mailboxes import mesh_mailbox_handshake
from transmissions.engine.controls import outbound_resume
from transmissions.models import HaltKind, OutboundHalt, Transmission
from transmissions.pipeline.sending import SendOutcome, document_send, documents_send

S = DocumentStatus
WRONG = "not-the-mailbox-password"


def open_halts(mailbox) -> list[OutboundHalt]:
    return list(
        OutboundHalt.objects.filter(
            sending_organisation=mailbox.sending_organisation, closed_at__isnull=True
        )
    )


def test_wrong_password_halts_once_and_resuming_sends_every_document(
    mesh, practice, monkeypatch
):
    documents = [ready_document(mesh) for _ in range(4)]
    monkeypatch.setenv("MESH_PASSWORD_RX1", WRONG)

    first = document_send(document_id=documents[0].pk)
    rest = documents_send(document_ids=[d.pk for d in documents[1:]])
    poll = mesh_inbox_poll(mailbox_id=mesh.pk)
    mailbox = mesh_mailbox_handshake(mailbox_id=mesh.pk)
    outbound_halts_watch()
    outbound_halts_watch()  # the watch runs every minute: still one incident

    assert (first.outcome, first.detail) == (SendOutcome.HALTED, HaltKind.TOKEN_FAILURE)
    assert {r.outcome for r in rest} == {SendOutcome.HALTED}
    assert poll.credentials_refused and poll.outcomes == {}
    assert mailbox.last_handshake_error.startswith("auth:")
    [halt] = open_halts(mesh)
    assert halt.kind == HaltKind.TOKEN_FAILURE
    assert "MESH credentials refused" in halt.reason
    assert VALID_NHS_NUMBER not in halt.reason
    [incident] = Incident.objects.filter(kind=IncidentKind.OUTBOUND_HALTED)
    assert incident.state == IncidentState.OPEN
    assert incident.scope == f"{HaltKind.TOKEN_FAILURE}:RX1"
    assert VALID_NHS_NUMBER not in incident.summary + str(incident.details)
    for document in documents:
        document.refresh_from_db()
        assert document.status == S.READY
    assert not WorkItem.objects.filter(document__in=documents).exists()
    # Only the first was tried; its refused attempt does not count.
    [tried] = Transmission.objects.filter(document__in=documents)
    assert tried.document_id == documents[0].pk
    assert (tried.attempts, tried.next_attempt_at) == (0, None)
    assert tried.last_error_class == "auth"
    assert practice.inbox() == []

    monkeypatch.setenv("MESH_PASSWORD_RX1", "password")
    outbound_resume(
        reason="MESH password corrected",
        actor=None,
        sending_organisation=mesh.sending_organisation,
    )
    sent = [document_send(document_id=d.pk) for d in documents]

    assert {r.outcome for r in sent} == {SendOutcome.POSTED}
    assert open_halts(mesh) == []
    for message_id in practice.inbox():
        message = practice.take(message_id)
        practice.answer(message, itk3.INFRASTRUCTURE_OK)
        practice.answer(message, itk3.PATIENT_KNOWN)
    mesh_inbox_poll(mailbox_id=mesh.pk)
    for document in documents:
        document.refresh_from_db()
        assert document.status == S.ACCEPTED
    # One message per document: the first reused its local id, not a second one.
    assert Transmission.objects.filter(document__in=documents).count() == 4
    assert tried.idempotency_key == f"{documents[0].public_id}.1"
    outbound_halts_watch()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert AuditEvent.objects.filter(action="outbound.halted").count() == 1


def test_wrong_password_on_the_inbox_poll_alone_halts_and_raises_one_incident(
    mesh, monkeypatch
):
    monkeypatch.setenv("MESH_PASSWORD_RX1", WRONG)

    polls = [mesh_inbox_poll(mailbox_id=mesh.pk) for _ in range(3)]
    outbound_halts_watch()

    assert all(poll.credentials_refused for poll in polls)
    assert len(open_halts(mesh)) == 1
    assert Incident.objects.filter(kind=IncidentKind.OUTBOUND_HALTED).count() == 1
