"""A person resolves a kept MESH answer on its admin page: applies it to the send
it is about (through the same rules as an answer that arrived matched), records
the send without applying it, or dismisses it; each once, with a reason, audited;
only integration operators may, and only for their own organisation's sends.
Against the real mesh-sandbox, the practice driven by a MESH client."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from casework.models import ACTIVE_STATUSES, WorkItem
from docflow.models import DocumentStatus, SendingOrganisation
from tests.casework.factories import IG_OFFICER, INTEGRATION_OPERATOR, staff
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import ready_document
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.conformance.quarantine import (
    QuarantineNotApplicable,
    mesh_quarantined_answer_apply,
)
from transmissions.channels.mesh.inbox import mesh_inbox_poll
from transmissions.models import (
    MeshInboxMessage,
    MeshQuarantinedAnswer,
    Transmission,
    TransmissionState,
)
from transmissions.pipeline.sending import SendOutcome, document_send

S = DocumentStatus
ACK_WORKFLOW = f"{mesh_sandbox.WORKFLOW}_ACK"


def _send(document) -> Transmission:
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    return Transmission.objects.get(document=document)


def _mistyped_answer(practice, code: str) -> MeshQuarantinedAnswer:
    """The practice answers with an id that names no send of ours."""
    message_id = practice.client.send(
        recipient=mesh_sandbox.OUR_MAILBOX,
        content=itk3.response_message(
            response_to=str(uuid.uuid4()),
            code=code,
            sender_mailbox=mesh_sandbox.GP_MAILBOX,
        ),
        workflow_id=ACK_WORKFLOW,
        local_id=f"ack-{code}",
        filename="response.json",
        content_type="application/fhir+json",
    )
    return message_id


def _kept_after_poll(mesh, message_id: str) -> MeshQuarantinedAnswer:
    mesh_inbox_poll(mailbox_id=mesh.pk)
    return MeshQuarantinedAnswer.objects.get(message_id=message_id)


def _resolve_url(kept) -> str:
    return reverse("admin:transmissions_meshquarantinedanswer_resolve", args=[kept.pk])


def _change_url(kept) -> str:
    return reverse("admin:transmissions_meshquarantinedanswer_change", args=[kept.pk])


def _signed_in(role, mesh, username) -> Client:
    user = staff(role, organisations=[mesh.sending_organisation], username=username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_an_operator_applies_a_mistyped_rejection_to_the_send_it_is_about(
    mesh, practice
):
    document = ready_document(mesh)
    transmission = _send(document)
    practice.take()
    kept = _kept_after_poll(mesh, _mistyped_answer(practice, itk3.PATIENT_NOT_KNOWN))
    document.refresh_from_db()
    assert document.status == S.DELIVERED  # kept, nothing applied yet
    operator = _signed_in(INTEGRATION_OPERATOR, mesh, "olu")

    page = operator.get(_change_url(kept))
    assert page.status_code == 200
    assert _resolve_url(kept).encode() in page.content
    form = operator.get(_resolve_url(kept))
    assert form.status_code == 200 and b"Our send" in form.content
    answer = operator.post(
        _resolve_url(kept),
        {
            "decision": "apply",
            "send": transmission.external_id,  # the MESH message id of our send
            "reason": "Practice phoned: they mistyped the id; it is this letter",
        },
    )

    assert answer.status_code == 302
    assert answer["Location"] == _change_url(kept)
    document.refresh_from_db()
    transmission.refresh_from_db()
    kept.refresh_from_db()
    assert document.status == S.REJECTED
    assert transmission.state == TransmissionState.FINAL
    assert transmission.rejection_code == "ITK-30002"
    assert WorkItem.objects.filter(
        document=document, status__in=ACTIVE_STATUSES
    ).exists()
    assert (kept.status, kept.transmission, kept.closed_by) == (
        "matched",
        transmission,
        "olu",
    )
    matched = AuditEvent.objects.get(
        action="mesh.answer_matched", target_id=str(kept.public_id)
    )
    assert matched.data["applied"] is True and matched.actor_label == "olu"
    on_timeline = AuditEvent.objects.get(
        action="transmission.mesh_answer",
        target_id=str(document.public_id),
        data__matched_by_hand=str(kept.public_id),
    )
    assert on_timeline.data["itk3_code"] == itk3.PATIENT_NOT_KNOWN
    # Resolved once: the page no longer offers it, and a second try is refused.
    assert _resolve_url(kept).encode() not in operator.get(_change_url(kept)).content
    again = operator.post(
        _resolve_url(kept), {"decision": "dismiss", "reason": "again"}
    )
    assert again.status_code == 302
    kept.refresh_from_db()
    assert kept.status == "matched"


def test_a_matched_business_acknowledgement_still_waits_for_the_other_one(
    mesh, practice
):
    document = ready_document(mesh)
    transmission = _send(document)
    message = practice.take()
    kept = _kept_after_poll(mesh, _mistyped_answer(practice, itk3.PATIENT_KNOWN))

    applied = mesh_quarantined_answer_apply(
        quarantined=kept,
        transmission=transmission,
        reason="Practice confirmed the letter is filed",
        actor=None,
    )

    document.refresh_from_db()
    assert document.status == S.DELIVERED  # 30001 without 20013 accepts nothing
    assert applied.itk3_code == itk3.PATIENT_KNOWN
    assert MeshInboxMessage.objects.get(message_id=kept.message_id).transmission == (
        transmission
    )
    # The 20013 that arrives matched completes the pair counted with the hand match.
    practice.answer(message, itk3.INFRASTRUCTURE_OK)
    mesh_inbox_poll(mailbox_id=mesh.pk)
    document.refresh_from_db()
    assert document.status == S.ACCEPTED


def test_only_someone_allowed_to_resolve_answers_may_and_never_for_another_trust(
    mesh, practice
):
    document = ready_document(mesh)
    _send(document)
    practice.take()
    kept = _kept_after_poll(mesh, _mistyped_answer(practice, itk3.PATIENT_NOT_KNOWN))
    ig = _signed_in(IG_OFFICER, mesh, "iggy")

    assert ig.get(_change_url(kept)).status_code == 200  # IG officers see it
    assert _resolve_url(kept).encode() not in ig.get(_change_url(kept)).content
    assert ig.get(_resolve_url(kept)).status_code == 403
    assert (
        ig.post(
            _resolve_url(kept), {"decision": "dismiss", "reason": "not mine"}
        ).status_code
        == 403
    )

    other = SendingOrganisation.objects.create(
        ods_code="RX9",
        name="Another Trust",
        connect_client_id="client-RX9",
        connect_secret_ref="CONNECT_SECRET_RX9",
    )
    theirs = Transmission.objects.get(document=document)
    theirs.document.sending_organisation = other
    theirs.document.save(update_fields=["sending_organisation"])
    operator = _signed_in(INTEGRATION_OPERATOR, mesh, "olu")
    refused = operator.post(
        _resolve_url(kept),
        {"decision": "apply", "send": str(theirs.public_id), "reason": "phoned"},
    )
    assert refused.status_code == 200
    assert b"No MESH send of this mailbox" in refused.content
    kept.refresh_from_db()
    assert kept.status == "open"


def test_an_unreadable_answer_cannot_be_applied_only_dismissed(mesh, practice):
    document = ready_document(mesh)
    transmission = _send(document)
    practice.take()
    garbled = practice.client.send(
        recipient=mesh_sandbox.OUR_MAILBOX,
        content=b'{"resourceType": "Bundle", "entry": [',
        workflow_id=ACK_WORKFLOW,
        local_id="ack-garbled",
        filename="response.json",
    )
    kept = _kept_after_poll(mesh, garbled)

    with pytest.raises(QuarantineNotApplicable, match="unreadable"):
        mesh_quarantined_answer_apply(
            quarantined=kept, transmission=transmission, reason="try", actor=None
        )
    operator = _signed_in(INTEGRATION_OPERATOR, mesh, "olu")
    missing_send = operator.post(
        _resolve_url(kept), {"decision": "apply", "send": "", "reason": "try"}
    )
    assert missing_send.status_code == 200
    assert b"Name the send this answer is about." in missing_send.content
    dismissed = operator.post(
        _resolve_url(kept),
        {"decision": "dismiss", "reason": "Practice resent a readable answer"},
    )

    assert dismissed.status_code == 302
    kept.refresh_from_db()
    document.refresh_from_db()
    assert kept.status == "dismissed"
    assert document.status == S.DELIVERED
    assert AuditEvent.objects.filter(
        action="mesh.answer_dismissed", target_id=str(kept.public_id)
    ).exists()
