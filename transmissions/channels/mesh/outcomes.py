"""What MESH and the practice say about a message, applied to its transmission and
document through the same audited transitions and work item rule as Connect.

A message MESH accepted is in the recipient's mailbox: the document is received
and delivered. A non-delivery report (MESH status 14: never collected) makes it
undelivered; any other error report a system error; an ITK3 acknowledgement makes
it accepted or rejected, with the ITK3 code as the reason, so casework classifies
it (``ITK-30002`` is a clinical-workflow rejection).
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from docflow.models import Document, DocumentStatus
from docflow.services import TransitionRefused, document_transition
from transmissions.engine.moves import work_item_follow
from transmissions.models import Transmission, TransmissionState

S = DocumentStatus

NDR_STATUS_CODE = "14"
NDR_REASON = "NDR"

# Steps from each state the document may be in to the one MESH's news calls for.
_TO_RECEIVED = {S.SENDING: ["mark_received"], S.OUTCOME_UNKNOWN: ["mark_received"]}
_TO_DELIVERED = {
    S.SENDING: ["mark_received", "mark_delivered"],
    S.OUTCOME_UNKNOWN: ["mark_received", "mark_delivered"],
    S.RECEIVED: ["mark_delivered"],
}
PATHS: dict[str, dict[str, list[str]]] = {
    S.DELIVERED: _TO_DELIVERED,
    S.ACCEPTED: {
        **{k: [*v, "mark_accepted"] for k, v in _TO_RECEIVED.items()},
        S.RECEIVED: ["mark_accepted"],
        S.DELIVERED: ["mark_accepted"],
    },
    S.REJECTED: {
        **{k: [*v, "mark_rejected"] for k, v in _TO_RECEIVED.items()},
        S.RECEIVED: ["mark_rejected"],
        S.DELIVERED: ["mark_rejected"],
    },
    # An NDR is only ever issued for a message that sat in a mailbox uncollected.
    S.UNDELIVERED: {
        **{k: [*v, "mark_undelivered"] for k, v in _TO_DELIVERED.items()},
        S.DELIVERED: ["mark_undelivered"],
    },
    S.SYSTEM_ERROR: {
        **{k: [*v, "mark_system_error"] for k, v in _TO_RECEIVED.items()},
        S.RECEIVED: ["mark_system_error"],
        S.DELIVERED: ["mark_system_error"],
    },
}
FINAL_TARGETS = frozenset({S.ACCEPTED, S.REJECTED, S.UNDELIVERED, S.SYSTEM_ERROR})
STEP_REASONS = {
    "mark_received": "MESH_ACCEPTED",
    "mark_delivered": "IN_RECIPIENT_MAILBOX",
}


def _walk(
    document: Document, target: str, *, reason: str, data: dict, actor: Any
) -> Document:
    """Take the document to ``target`` one audited transition at a time; reports
    that do not fit its state (stale, repeated, after a person's decision) change
    nothing."""
    for step in PATHS[target].get(document.status, []):
        document = document_transition(
            document=document,
            transition=step,
            reason=STEP_REASONS.get(step, reason),
            data=data,
            actor=actor,
        )
    work_item_follow(document=document, actor=actor)  # once, on the last state
    return document


def _record_posted(transmission: Transmission, message_id: str) -> None:
    now = timezone.now()
    transmission.state = TransmissionState.POSTED
    transmission.external_id = message_id
    transmission.posted_at = transmission.posted_at or now
    transmission.next_attempt_at = None
    # Never polled by Connect's tracker: MESH's news comes through our inbox.
    transmission.next_poll_at = None
    transmission.last_error_class = ""
    transmission.mesh_status = "accepted"
    transmission.last_status_at = now
    transmission.save(
        update_fields=[
            "state",
            "external_id",
            "posted_at",
            "next_attempt_at",
            "next_poll_at",
            "last_error_class",
            "mesh_status",
            "last_status_at",
            "updated_at",
        ]
    )
    payload = transmission.payload_version
    audit_record(
        action="transmission.posted",
        target_type="document",
        target_id=str(transmission.document.public_id),
        data={
            "transmission": str(transmission.public_id),
            "channel": transmission.channel,
            "destination": transmission.destination_ods_code,
            "recipient_mailbox": transmission.recipient_mailbox,
            "workflow": transmission.workflow_id,
            "payload_version": str(payload.public_id),
            "sha256": payload.sha256,
            "message_id": message_id,
            "local_id": transmission.idempotency_key,
        },
    )


def _locked(transmission_id: int) -> Transmission:
    transmission = (
        Transmission.objects.select_for_update(of=("self",))
        .select_related("payload_version")
        .get(pk=transmission_id)
    )
    transmission.document = Document.objects.select_for_update().get(
        pk=transmission.document_id
    )
    return transmission


@transaction.atomic
def mesh_transmission_record_posted(
    *, transmission_id: int, message_id: str, actor: Any = None
) -> Transmission:
    """MESH holds the message: record its id once (audited with the payload version
    that went), and the document is received and in the recipient's mailbox."""
    transmission = _locked(transmission_id)
    if transmission.state == TransmissionState.PENDING:
        _record_posted(transmission, message_id)
    # Refused only when the document moved on meanwhile (an acknowledgement
    # overtook us): that stands.
    with contextlib.suppress(TransitionRefused):
        transmission.document = _walk(
            transmission.document,
            S.DELIVERED,
            reason="IN_RECIPIENT_MAILBOX",
            data={"message_id": message_id, "channel": "mesh"},
            actor=actor,
        )
    return transmission


@transaction.atomic
def mesh_transmission_apply(
    *,
    transmission_id: int,
    target: str | None,
    reason: str,
    mesh_status: str,
    message_id: str,
    status_code: int | None = None,
    data: dict | None = None,
    actor: Any = None,
) -> bool:
    """Apply one report or acknowledgement; ``target`` None records it without
    moving the document. Returns whether anything changed."""
    transmission = _locked(transmission_id)
    if transmission.state == TransmissionState.PENDING:
        # Its upload's answer was lost; the report names the message.
        _record_posted(transmission, message_id)
    elif transmission.state not in (TransmissionState.POSTED,):
        return False
    before = transmission.document.status
    details = {
        "message_id": transmission.external_id,
        "channel": "mesh",
        **(data or {}),
    }
    document = transmission.document
    if target is not None:
        try:
            document = _walk(document, target, reason=reason, data=details, actor=actor)
        except TransitionRefused:
            return False
    moved = document.status != before
    if target is not None and not moved and document.status != target:
        return False  # stale: the document is past what this says
    now = timezone.now()
    transmission.mesh_status = mesh_status[:32]
    transmission.last_status_at = now
    if status_code is not None:
        transmission.status_code = status_code
    if reason and target in (S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED):
        transmission.rejection_code = reason[:16]
    fields = ["mesh_status", "last_status_at", "status_code", "rejection_code"]
    if target in FINAL_TARGETS and document.status == target:
        if transmission.state != TransmissionState.FINAL:
            audit_record(
                action="transmission.final",
                target_type="document",
                target_id=str(document.public_id),
                data={
                    "transmission": str(transmission.public_id),
                    "message_id": transmission.external_id,
                    "outcome": document.status,
                    "reason": reason,
                },
                actor=actor,
            )
        transmission.state = TransmissionState.FINAL
        fields.append("state")
    transmission.save(update_fields=[*fields, "updated_at"])
    return True
