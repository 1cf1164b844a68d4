"""MESH claims under a lease, like Connect's: a worker that dies while (or before)
uploading leaves a lease that expires within DOCFLOW_SEND_LEASE_SECONDS, not the
300 s stuck-sending backstop; the claim goes to outcome unknown and is settled by
the message's local id against NHS England's mesh-sandbox: found -> recorded with
one message, absent -> sent again under the same local id."""

from __future__ import annotations

import datetime as dt

import time_machine
from django.utils import timezone

from docflow.models import Channel, DocumentStatus
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import ready_document
from transmissions import tasks
from transmissions.channels.mesh.connections import mesh_client_for
from transmissions.channels.mesh.sending import mesh_message
from transmissions.engine.claims import document_claim
from transmissions.engine.leases import claims_expired
from transmissions.models import Transmission
from transmissions.pipeline.sending import SendOutcome
from transmissions.pipeline.settling import Settled, sending_claim_settle

S = DocumentStatus


def _claimed(mesh_db):
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
    return document, claimed_document, transmission, payload


def test_a_mesh_claim_carries_a_lease_that_a_live_worker_keeps(mesh_db, settings):
    settings.DOCFLOW_SEND_LEASE_SECONDS = 15
    document, _claimed_document, transmission, _payload = _claimed(mesh_db)

    assert transmission.lease_expires_at is not None
    assert transmission.lease_expires_at <= timezone.now() + dt.timedelta(seconds=15)
    assert claims_expired() == []
    assert sending_claim_settle(document_id=document.pk) == Settled.LIVE
    document.refresh_from_db()
    assert document.status == S.SENDING


def test_a_dead_workers_uploaded_mesh_claim_is_found_by_local_id_after_its_lease(
    mesh_db, practice, settings
):
    settings.DOCFLOW_SEND_LEASE_SECONDS = 15
    document, claimed_document, transmission, payload = _claimed(mesh_db)
    with mesh_client_for(mesh_db) as client:
        message_id = client.send(
            recipient=mesh_sandbox.GP_MAILBOX,
            content=mesh_message(claimed_document, transmission, payload, mesh_db),
            workflow_id=mesh_sandbox.WORKFLOW,
            local_id=transmission.idempotency_key,
            filename="uploaded.json",
        )
    # ... and the worker died before recording it.

    with time_machine.travel(timezone.now() + dt.timedelta(seconds=16)):
        assert claims_expired() == [transmission.pk]
        assert sending_claim_settle(document_id=document.pk) == Settled.UNKNOWN
    assert tasks.settle_outcome_unknown(document.pk) == "found"

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.DELIVERED
    assert transmission.external_id == message_id
    assert practice.inbox() == [message_id]


def test_a_dead_workers_unsent_mesh_claim_goes_again_under_its_local_id(
    mesh_db, practice, settings
):
    settings.DOCFLOW_SEND_LEASE_SECONDS = 15
    document, _claimed_document, _transmission, _payload = _claimed(mesh_db)

    with time_machine.travel(timezone.now() + dt.timedelta(seconds=16)):
        assert sending_claim_settle(document_id=document.pk) == Settled.UNKNOWN
    assert tasks.settle_outcome_unknown(document.pk) == "absent"
    document.refresh_from_db()
    assert document.status == S.READY
    assert practice.inbox() == []

    assert tasks.send_document(document.pk) == SendOutcome.POSTED
    [sent] = Transmission.objects.filter(document=document)
    assert sent.idempotency_key == f"{document.public_id}.1"
    assert practice.inbox() == [sent.external_id]
