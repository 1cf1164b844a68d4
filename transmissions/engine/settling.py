"""Settling uncertain sends, the channel-neutral part.

A claim whose lease expired (its worker died, see ``leases``) is settled at once
by its channel (Connect: by idempotency key; MESH: it goes to ``outcome_unknown``
and is settled by the message's local id); ``claim_mark_unknown`` is that last
step. A document in ``sending`` past DOCFLOW_SENDING_TIMEOUT_SECONDS is the last
backstop (a claim without a lease): ``sending_stuck_mark_unknown``. Each channel
settles ``outcome_unknown`` by asking whether it holds the key, with the answers
named in ``Settled``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from docflow.models import Document, DocumentStatus
from docflow.services import TransitionRefused
from transmissions.engine.moves import document_move
from transmissions.models import Transmission
from transmissions.queue import SETTLE, enqueue_on_commit

S = DocumentStatus


class Settled:
    FOUND = "found"
    ABSENT = "absent"
    NOT_UNKNOWN = "not_unknown"
    FAILED = "failed"
    # Expired claims only: still its worker's (renewed meanwhile, or settled), or
    # left unknown because Connect could not be asked.
    LIVE = "live"
    UNKNOWN = "unknown"


def sending_stuck_mark_unknown(*, actor: Any = None) -> list[int]:
    """A document in ``sending`` longer than any POST can take was left by a worker that
    died: its outcome is unknown until the idempotency key settles it."""
    timeout = timedelta(seconds=settings.DOCFLOW_SENDING_TIMEOUT_SECONDS)
    cutoff = timezone.now() - timeout
    moved = []
    for document_id in Document.objects.filter(
        status=S.SENDING, status_changed_at__lt=cutoff
    ).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            try:
                document_move(
                    document=Document(pk=document_id),
                    transition="mark_outcome_unknown",
                    reason="STUCK_SENDING",
                    actor=actor,
                )
            except TransitionRefused:
                continue  # its worker finished after all
        moved.append(document_id)
    return moved


def claim_expired(transmission: Transmission | None) -> bool:
    """Whether the pending transmission's claim is a dead worker's: the document is
    still ``sending`` and the lease ran out."""
    return (
        transmission is not None
        and transmission.document.status == S.SENDING
        and transmission.lease_expires_at is not None
        and transmission.lease_expires_at <= timezone.now()
    )


def claim_mark_unknown(
    *, document_id: int, transmission: Transmission, actor: Any = None
) -> str:
    """An expired claim the channel cannot be asked about now (or has no key to ask
    by) goes to ``outcome_unknown``, and its settling is queued."""
    with transaction.atomic():
        try:
            document_move(
                document=Document(pk=document_id),
                transition="mark_outcome_unknown",
                reason="CLAIM_EXPIRED",
                data={"transmission": str(transmission.public_id)},
                actor=actor,
            )
        except TransitionRefused:
            return Settled.LIVE
        enqueue_on_commit(SETTLE, document_id)
    return Settled.UNKNOWN
