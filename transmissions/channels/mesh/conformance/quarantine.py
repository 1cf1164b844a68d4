"""Answers that change nothing are kept, never only acknowledged away.

An ITK3 answer we cannot read, one that names no send of ours, and one from a
mailbox the document was not sent to are each kept before MESH's acknowledgement
removes them: who sent it, its local id, the id it says it answers, its workflow,
and a copy of the content encrypted in the payload store until its retention
ends. Each is an item of work in the infrastructure bucket (a person matches it
by hand and applies it, or dismisses it, on its admin page) and an audit event;
a suspicious one also raises an incident, through a signal the operations app
listens to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from casework.models import WorkItemBucket
from docflow.models import Channel
from docflow.payloads.store import payload_blob_read, payload_blob_write
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.client import InboxMessage
from transmissions.channels.mesh.conformance.acknowledgements import (
    mesh_response_apply,
)
from transmissions.channels.mesh.conformance.signals import suspicious_answer_received
from transmissions.channels.mesh.connections import mesh_setting
from transmissions.models import (
    MeshInboxMessage,
    MeshMailbox,
    MeshQuarantinedAnswer,
    MeshQuarantineKind,
    MeshQuarantineStatus,
    Transmission,
)

logger = logging.getLogger(__name__)

QUARANTINE_BUCKET = "infrastructure"


class QuarantineStateError(Exception):
    """The quarantined answer has already been dealt with."""


class QuarantineNotApplicable(ValueError):
    """The kept answer cannot be applied to the send named."""


@transaction.atomic
def mesh_answer_quarantine(
    *,
    mailbox: MeshMailbox,
    message: InboxMessage,
    kind: str,
    problem: str,
    referenced_id: str = "",
    response_code: str = "",
    transmission: Transmission | None = None,
    actor: Any = None,
) -> MeshQuarantinedAnswer:
    """Keep one answer that changed nothing, encrypted, with an audit event, as an
    open item in the infrastructure bucket; a suspicious one raises an incident.
    Call it before the message is acknowledged in MESH."""
    retention = timedelta(days=int(mesh_setting("QUARANTINE_RETENTION_DAYS", 2190)))
    stored = payload_blob_write(message.content) if message.content else None
    quarantined = MeshQuarantinedAnswer.objects.create(
        mailbox=mailbox,
        kind=kind,
        message_id=message.message_id[:64],
        sender_mailbox=message.sender[:20],
        local_id=message.local_id[:300],
        workflow_id=message.workflow_id[:64],
        referenced_id=referenced_id[:255],
        response_code=response_code[:16],
        problem=problem[:255],
        transmission=transmission,
        bucket=WorkItemBucket.objects.filter(key=QUARANTINE_BUCKET).first(),
        content_storage_name=stored.storage_name if stored else "",
        content_sha256=stored.sha256 if stored else "",
        content_size_bytes=stored.size_bytes if stored else 0,
        retain_until=timezone.now() + retention,
    )
    data = {
        "kind": kind,
        "message_id": quarantined.message_id,
        "mailbox": mailbox.mailbox_id,
        "sender_mailbox": quarantined.sender_mailbox,
        "local_id": quarantined.local_id,
        "workflow": quarantined.workflow_id,
        "referenced_id": quarantined.referenced_id,
        "response_code": quarantined.response_code,
        "problem": quarantined.problem,
        "sha256": quarantined.content_sha256,
    }
    if transmission is not None:
        data["transmission"] = str(transmission.public_id)
    audit_record(
        action="mesh.answer_quarantined",
        target_type="mesh_answer",
        target_id=str(quarantined.public_id),
        data=data,
        actor=actor,
    )
    if transmission is not None:
        # On the document's timeline too: an answer about it that changed nothing.
        audit_record(
            action="transmission.mesh_answer_quarantined",
            target_type="document",
            target_id=str(transmission.document.public_id),
            data={
                "transmission": str(transmission.public_id),
                "quarantined": str(quarantined.public_id),
                "kind": kind,
                "itk3_code": quarantined.response_code,
                "from_mailbox": quarantined.sender_mailbox,
                "applied": False,
            },
            actor=actor,
        )
    # Ids and mailboxes only: never the content or anything about the patient.
    logger.warning(
        "MESH answer %s kept for a person (%s, from %s)",
        quarantined.message_id,
        kind,
        quarantined.sender_mailbox or "unknown",
    )
    if kind == MeshQuarantineKind.SUSPICIOUS:
        suspicious_answer_received.send(
            sender=MeshQuarantinedAnswer, quarantined=quarantined, actor=actor
        )
    return quarantined


def mesh_quarantined_content(*, quarantined: MeshQuarantinedAnswer) -> bytes:
    """The answer's content as it arrived, proved against its checksum."""
    if not quarantined.content_storage_name:
        return b""
    return payload_blob_read(
        storage_name=quarantined.content_storage_name,
        expected_sha256=quarantined.content_sha256,
    )


def _closed(
    locked: MeshQuarantinedAnswer,
    *,
    status: str,
    reason: str,
    actor: Any,
    transmission: Transmission | None,
    data: dict | None = None,
) -> MeshQuarantinedAnswer:
    """Close an answer the caller holds locked, with a reason; audited."""
    locked.status = status
    locked.close_reason = reason.strip()[:255]
    locked.closed_at = timezone.now()
    locked.closed_by = str(getattr(actor, "username", "") or "system")[:150]
    if transmission is not None:
        locked.transmission = transmission
    locked.save(
        update_fields=[
            "status",
            "close_reason",
            "closed_at",
            "closed_by",
            "transmission",
        ]
    )
    audit_record(
        action=f"mesh.answer_{status}",
        target_type="mesh_answer",
        target_id=str(locked.public_id),
        data={
            "message_id": locked.message_id,
            "reason": locked.close_reason,
            "transmission": str(transmission.public_id) if transmission else None,
            **(data or {}),
        },
        actor=actor,
    )
    return locked


def _open_locked(quarantined: MeshQuarantinedAnswer, reason: str):
    locked = (
        MeshQuarantinedAnswer.objects.select_for_update()
        .select_related("mailbox")
        .get(pk=quarantined.pk)
    )
    if locked.status != MeshQuarantineStatus.OPEN:
        raise QuarantineStateError("This answer has already been dealt with")
    if not reason.strip():
        raise ValueError("a reason is required")
    return locked


@transaction.atomic
def mesh_quarantined_answer_close(
    *,
    quarantined: MeshQuarantinedAnswer,
    status: str,
    reason: str,
    actor: Any,
    transmission: Transmission | None = None,
) -> MeshQuarantinedAnswer:
    """A person dismissed the answer, or recorded which send it was about without
    applying it (naming the send), with a reason; audited. A closed answer stays
    closed. To apply what the answer says, see :func:`mesh_quarantined_answer_apply`."""
    if status not in (MeshQuarantineStatus.MATCHED, MeshQuarantineStatus.DISMISSED):
        raise ValueError(f"not a closing status: {status}")
    if status == MeshQuarantineStatus.MATCHED and transmission is None:
        raise ValueError("matching names the send it answers")
    locked = _open_locked(quarantined, reason)
    return _closed(
        locked, status=status, reason=reason, actor=actor, transmission=transmission
    )


@dataclass(frozen=True)
class QuarantineApplied:
    """A kept answer a person matched to a send and applied."""

    quarantined: MeshQuarantinedAnswer
    transmission: Transmission
    itk3_code: str
    changed: bool  # False: the send was already past what the answer says


@transaction.atomic
def mesh_quarantined_answer_apply(
    *,
    quarantined: MeshQuarantinedAnswer,
    transmission: Transmission,
    reason: str,
    actor: Any,
) -> QuarantineApplied:
    """A person has established which of our sends a kept ITK3 answer is about (a
    practice that mistyped the id, a mailbox that acts for the practice) and
    applies it: the answer is read again from its kept copy and taken through the
    same decision as one that arrived matched (both acknowledgements, a rejection
    moving the document and opening its work item), by that person, with their
    reason; the answer is then closed as matched. The send must be a MESH send of
    the mailbox's own organisation. An unreadable answer cannot be applied: a
    person deals with the practice and dismisses it with what was done."""
    locked = _open_locked(quarantined, reason)
    if transmission.channel != Channel.MESH:
        raise QuarantineNotApplicable("That send did not go over MESH.")
    if (
        transmission.document.sending_organisation_id
        != locked.mailbox.sending_organisation_id
    ):
        raise QuarantineNotApplicable(
            "That send belongs to another organisation's mailbox."
        )
    try:
        response = itk3.parse_response(mesh_quarantined_content(quarantined=locked))
    except itk3.Itk3Unreadable as exc:
        raise QuarantineNotApplicable(
            "An unreadable answer cannot be applied; dismiss it with what was done."
        ) from exc
    Transmission.objects.select_for_update().get(pk=transmission.pk)
    # Counted towards the send's acknowledgements from now on (the second of the
    # pair is decided against the codes recorded for it).
    MeshInboxMessage.objects.filter(message_id=locked.message_id).update(
        transmission=transmission, response_code=response.code[:16]
    )
    _decision, changed = mesh_response_apply(
        transmission=transmission,
        response=response,
        acknowledgement_id=locked.message_id,
        from_mailbox=locked.sender_mailbox,
        actor=actor,
        matched_by_hand=str(locked.public_id),
    )
    closed = _closed(
        locked,
        status=MeshQuarantineStatus.MATCHED,
        reason=reason,
        actor=actor,
        transmission=transmission,
        data={"applied": changed, "itk3_code": response.code},
    )
    return QuarantineApplied(
        quarantined=closed,
        transmission=transmission,
        itk3_code=response.code,
        changed=changed,
    )
