"""Both ITK3 acknowledgements, from the right mailbox, and a deadline for them.

A send over MESH is complete only when the practice's system has sent both the
infrastructure acknowledgement (20013: received and processed) and the business
acknowledgement (30001: patient known here), in either order. A business
rejection (30002, 30003) or any infrastructure error code rejects it with its
code. Without both within DOCFLOW_MESH_ANSWER_DEADLINE_DAYS (default 20, as the
NHS sender Renalware waits; MESH itself reports non-collection after 5 days) the
document is undelivered, with its one work item.

An answer is applied only when it comes from the mailbox the document was sent
to, or one MESH's directory named for that practice; anything else is suspicious.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from docflow.models import Channel, DocumentStatus
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.connections import mesh_setting
from transmissions.models import (
    MeshEndpointLookup,
    MeshInboxMessage,
    Transmission,
    TransmissionState,
)

logger = logging.getLogger(__name__)
S = DocumentStatus

NO_ANSWER_REASON = "MESH-NO-ANSWER"


def answer_from_recipient(*, transmission: Transmission, sender: str) -> bool:
    """Whether ``sender`` may answer for the send: the mailbox it went to, or one
    MESH's directory named for the same practice."""
    sender = (sender or "").strip().upper()
    if not sender:
        return False
    if sender == (transmission.recipient_mailbox or "").upper():
        return True
    return MeshEndpointLookup.objects.filter(
        ods_code=transmission.destination_ods_code, mailbox_id__iexact=sender
    ).exists()


def _codes_recorded(transmission: Transmission) -> set[str]:
    return set(
        MeshInboxMessage.objects.filter(transmission=transmission).values_list(
            "response_code", flat=True
        )
    )


@dataclass(frozen=True)
class AnswerDecision:
    """Where one acknowledgement takes the document (None: nowhere yet) and what
    is still to come."""

    target: str | None
    waiting_for: tuple[str, ...] = ()


def answer_decide(
    *, transmission: Transmission, response: itk3.Itk3Response
) -> AnswerDecision:
    """What one readable answer means, given the answers already recorded for the
    send (the caller holds the transmission's lock)."""
    if not response.is_positive:
        return AnswerDecision(S.REJECTED)
    if not mesh_setting("BUSINESS_ACK_REQUIRED", True):
        return AnswerDecision(S.ACCEPTED)
    have = _codes_recorded(transmission) | {response.code}
    missing = tuple(
        code
        for code in (itk3.INFRASTRUCTURE_OK, itk3.PATIENT_KNOWN)
        if code not in have
    )
    return AnswerDecision(None if missing else S.ACCEPTED, missing)


def mesh_response_apply(
    *,
    transmission: Transmission,
    response: itk3.Itk3Response,
    acknowledgement_id: str,
    from_mailbox: str,
    actor: Any = None,
    matched_by_hand: str | None = None,
) -> tuple[AnswerDecision, bool]:
    """Apply one readable ITK3 answer to the send it is about (inside the caller's
    transaction): decide where it takes the document, move it, and put the answer on
    the document's timeline with its code, applied or not. The inbox calls it for an
    answer that arrived matched; the quarantine for one a person matched by hand
    (``matched_by_hand``: the kept answer's id). Returns the decision and whether
    anything changed."""
    from audit.services import audit_record
    from transmissions.channels.mesh.outcomes import mesh_transmission_apply

    decision = answer_decide(transmission=transmission, response=response)
    data = {
        "acknowledgement": acknowledgement_id,
        "itk3_code": response.code,
        "from_mailbox": from_mailbox,
    }
    if matched_by_hand is not None:
        data["matched_by_hand"] = matched_by_hand
    changed = mesh_transmission_apply(
        transmission_id=transmission.pk,
        target=decision.target,
        reason=f"ITK-{response.code}",
        mesh_status=("business_ack" if response.is_business else "infrastructure_ack")
        if response.is_positive
        else "negative_ack",
        message_id=transmission.external_id,
        status_code=int(response.code) if response.code.isdigit() else None,
        data=data,
        actor=actor,
    )
    audit_record(
        action="transmission.mesh_answer",
        target_type="document",
        target_id=str(transmission.document.public_id),
        data={
            "transmission": str(transmission.public_id),
            **data,
            "description": itk3.DESCRIPTIONS.get(response.code, response.description)[
                :255
            ],
            "applied": changed,
            "waiting_for": list(decision.waiting_for),
        },
        actor=actor,
    )
    return decision, changed


def answer_deadline() -> timedelta:
    return timedelta(days=float(mesh_setting("ANSWER_DEADLINE_DAYS", 20)))


def mesh_unanswered_settle(*, now=None, actor: Any = None) -> list[Transmission]:
    """Every MESH send whose acknowledgements have not both come within the
    deadline: its document becomes undelivered (one work item), its transmission
    final. Safe to run again: a settled send is no longer posted."""
    from transmissions.channels.mesh.outcomes import mesh_transmission_apply

    now = now or timezone.now()
    overdue = Transmission.objects.filter(
        channel=Channel.MESH,
        state=TransmissionState.POSTED,
        posted_at__lte=now - answer_deadline(),
        document__status__in=[S.RECEIVED, S.DELIVERED],
    ).order_by("posted_at", "id")
    settled = []
    for transmission in overdue:
        have = _codes_recorded(transmission)
        missing = [
            code
            for code in (itk3.INFRASTRUCTURE_OK, itk3.PATIENT_KNOWN)
            if code not in have
        ]
        changed = mesh_transmission_apply(
            transmission_id=transmission.pk,
            target=S.UNDELIVERED,
            reason=NO_ANSWER_REASON,
            mesh_status="no_answer",
            message_id=transmission.external_id,
            data={
                "missing_acknowledgements": missing,
                "deadline_days": answer_deadline().days,
            },
            actor=actor,
        )
        if changed:
            logger.warning(
                "MESH send %s unanswered after %s days: undelivered",
                transmission.public_id,
                answer_deadline().days,
            )
            settled.append(transmission)
    return settled
