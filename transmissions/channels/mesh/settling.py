"""Settling MESH sends whose outcome is unknown, by the message's local id.

MESH tracks what we sent by the local id we gave it. Found and complete: the
message is recorded as posted and nothing is sent again. Not found: it never
arrived, so sending again under the same local id is safe. Found part-uploaded (a
chunked upload that broke off): it can never be delivered; the transmission is
abandoned and the next send gets a new local id.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from docflow.models import Channel, Document, DocumentStatus
from docflow.services import TransitionRefused
from transmissions.channels.mesh.connections import mesh_client_for
from transmissions.channels.mesh.errors import MeshAuthFailed, MeshChannelError
from transmissions.channels.mesh.halts import mesh_credentials_halt
from transmissions.channels.mesh.outcomes import mesh_transmission_record_posted
from transmissions.engine.moves import document_move
from transmissions.engine.settling import Settled, claim_expired, claim_mark_unknown
from transmissions.models import MeshMailbox, Transmission, TransmissionState
from transmissions.queue import SEND, enqueue_on_commit

logger = logging.getLogger(__name__)
S = DocumentStatus

COMPLETE = frozenset({"accepted", "acknowledged", "undeliverable", "error"})


def mesh_pending_transmission(*, document_id: int) -> Transmission | None:
    """The document's pending transmission when it went over MESH."""
    return Transmission.objects.filter(
        document_id=document_id,
        state=TransmissionState.PENDING,
        channel=Channel.MESH,
    ).first()


def mesh_outcome_unknown_settle(*, document_id: int, actor: Any = None) -> str:
    """Ask MESH for the message by its local id: found -> posted; absent or
    incomplete -> back to ``ready``, never a blind second upload."""
    document = Document.objects.get(pk=document_id)
    if document.status != S.OUTCOME_UNKNOWN:
        return Settled.NOT_UNKNOWN
    transmission = mesh_pending_transmission(document_id=document_id)
    if transmission is None:
        logger.error("Document %s is unknown without a MESH send", document.pk)
        return Settled.FAILED
    mailbox = MeshMailbox.objects.filter(
        sending_organisation_id=transmission.sending_organisation_id
    ).first()
    if mailbox is None:
        return Settled.FAILED
    try:
        with mesh_client_for(mailbox) as client:
            found = client.track_by_local_id(transmission.idempotency_key)
    except MeshAuthFailed as exc:
        mesh_credentials_halt(mailbox=mailbox, error=exc)
        return Settled.FAILED
    except MeshChannelError as exc:
        logger.warning("MESH tracking failed (%s); next round", exc.error_class)
        return Settled.FAILED
    if found is not None and found.status in COMPLETE:
        mesh_transmission_record_posted(
            transmission_id=transmission.pk, message_id=found.message_id, actor=actor
        )
        return Settled.FOUND
    with transaction.atomic():
        try:
            document_move(
                document=Document(pk=document_id),
                transition="mark_proved_absent",
                reason="NOT_AT_MESH" if found is None else "MESH_UPLOAD_INCOMPLETE",
                data={
                    "transmission": str(transmission.public_id),
                    "local_id": transmission.idempotency_key,
                    "message_id": found.message_id if found else "",
                },
                actor=actor,
            )
        except TransitionRefused:
            return Settled.NOT_UNKNOWN
        if found is None:
            Transmission.objects.filter(pk=transmission.pk).update(
                next_attempt_at=timezone.now()
            )
        else:
            Transmission.objects.filter(pk=transmission.pk).update(
                state=TransmissionState.ABANDONED, external_id=found.message_id
            )
        enqueue_on_commit(SEND, document_id)
    return Settled.ABSENT


def mesh_claim_settle(*, document_id: int, actor: Any = None) -> str:
    """A MESH claim whose lease expired (its worker died) goes to ``outcome_unknown``
    at once, settled by the message's local id; one whose lease was renewed
    meanwhile is its worker's: left alone."""
    transmission = (
        Transmission.objects.select_related("document")
        .filter(document_id=document_id, state=TransmissionState.PENDING)
        .first()
    )
    if not claim_expired(transmission):
        return Settled.LIVE
    return claim_mark_unknown(
        document_id=document_id, transmission=transmission, actor=actor
    )
