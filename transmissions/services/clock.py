"""The clock: once a second, queue what has come due so that nothing waits for a
sweep.

A round (run by the tracker's loop, see ``tracker``, between its tracking rounds)
queues:

- retries whose ``next_attempt_at`` has come (``ready`` documents with a pending
  transmission), unless a halt or an open circuit holds them;
- trial sends of open circuits whose ``retry_at`` has come (one per circuit: the
  first success closes it and queues the rest, see ``controls``);
- the settling by idempotency key of claims whose lease expired (their worker
  died, see ``leases``), and of documents whose outcome is unknown.

Each thing queued is marked (``send_queued_at``, ``trial_queued_at``, a renewed
lease) so it is queued once; what was queued and never taken (its task lost with
a killed cluster) is queued again after DOCFLOW_CLOCK_REQUEUE_SECONDS. Every task
queued re-checks its document, so a second copy does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from docflow.models import Document, DocumentStatus
from transmissions.models import HaltKind, OutboundHalt, Transmission, TransmissionState
from transmissions.queue import SEND, SETTLE, SETTLE_CLAIM, enqueue_on_commit
from transmissions.services.controls import (
    circuit_waiting_documents,
    halt_blocks,
    outbound_blocking_halt,
)
from transmissions.services.leases import claims_expired

# A document whose outcome became unknown is left this long to the changes feed
# (which matches it by key) before it is settled by asking Connect; then again
# this often while Connect cannot answer.
SETTLE_AFTER_SECONDS = 2
SETTLE_EVERY_SECONDS = 5


@dataclass(frozen=True)
class ClockRound:
    retries: int
    trials: int
    claims: int
    unknown: int


def clock_round(*, now: datetime | None = None, limit: int = 500) -> ClockRound:
    """Queue everything due now: retries at their ``next_attempt_at``, circuit
    trials at their ``retry_at``, the settling of expired claims and of unknown
    outcomes; each once (again only after DOCFLOW_CLOCK_REQUEUE_SECONDS)."""
    now = now or timezone.now()
    halts = list(
        OutboundHalt.objects.filter(closed_at__isnull=True).select_related(
            "sending_organisation"
        )
    )
    return ClockRound(
        retries=retries_queue_due(now=now, halts=halts, limit=limit),
        trials=circuit_trials_queue_due(now=now, halts=halts),
        claims=claims_expired_queue(now=now, limit=limit),
        unknown=outcomes_unknown_queue_due(now=now, limit=limit),
    )


def _halts_of(halts: list[OutboundHalt], sending_organisation_id: int) -> list:
    return [
        halt
        for halt in halts
        if halt.sending_organisation_id in (None, sending_organisation_id)
    ]


def _requeue_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.DOCFLOW_CLOCK_REQUEUE_SECONDS)


@transaction.atomic
def retries_queue_due(
    *, now: datetime, halts: list[OutboundHalt], limit: int = 500
) -> int:
    """Queue the send of every ``ready`` document whose retry is due and that no
    halt holds (each once per due time); returns how many."""
    due = (
        Transmission.objects.filter(
            state=TransmissionState.PENDING,
            next_attempt_at__lte=now,
            document__status=DocumentStatus.READY,
        )
        .filter(
            Q(send_queued_at__isnull=True)
            | Q(send_queued_at__lt=F("next_attempt_at"))
            | Q(send_queued_at__lt=_requeue_before(now))
        )
        .order_by("next_attempt_at")
        .values_list(
            "pk", "document_id", "sending_organisation_id", "destination_ods_code"
        )[:limit]
    )
    queued: list[int] = []
    for pk, document_id, sending_organisation_id, destination in due:
        if outbound_blocking_halt(
            sending_organisation_id=sending_organisation_id,
            destination_ods_code=destination,
            now=now,
            halts=_halts_of(halts, sending_organisation_id),
        ):
            continue  # held: its halt's lifting (or trial) queues it
        queued.append(pk)
        enqueue_on_commit(SEND, document_id)
    Transmission.objects.filter(pk__in=queued).update(send_queued_at=now)
    return len(queued)


@transaction.atomic
def circuit_trials_queue_due(*, now: datetime, halts: list[OutboundHalt]) -> int:
    """At the end of an open circuit's cool-down, queue one trial send through it
    (a ready document it holds back that nothing else holds); returns how many."""
    trials = 0
    for halt in halts:
        if halt.kind != HaltKind.CIRCUIT_OPEN or halt.retry_at is None:
            continue
        if halt.retry_at > now or (
            halt.trial_queued_at is not None and halt.trial_queued_at >= halt.retry_at
        ):
            continue
        marked = OutboundHalt.objects.filter(
            pk=halt.pk, closed_at__isnull=True, retry_at=halt.retry_at
        ).update(trial_queued_at=now)
        if not marked:
            continue  # closed or pushed back meanwhile
        others = [
            other
            for other in _halts_of(halts, halt.sending_organisation_id)
            if other.pk != halt.pk
        ]
        for document_id, destination in _candidates(halt):
            if any(
                halt_blocks(other, destination_ods_code=destination, now=now)
                for other in others
            ):
                continue
            enqueue_on_commit(SEND, document_id)
            trials += 1
            break
    return trials


def _candidates(halt: OutboundHalt) -> list[tuple[int, str]]:
    ids = circuit_waiting_documents(halt=halt, limit=20)
    found = dict(
        Document.objects.filter(pk__in=ids).values_list("pk", "destination_ods_code")
    )
    return [(pk, found[pk]) for pk in ids if pk in found]


@transaction.atomic
def claims_expired_queue(*, now: datetime, limit: int = 500) -> int:
    """Queue the settling by key of every claim whose lease expired, once (again
    after a lease's length if its settler died too); returns how many."""
    again_before = now - timedelta(seconds=settings.DOCFLOW_SEND_LEASE_SECONDS)
    expired = list(
        Transmission.objects.filter(
            pk__in=claims_expired(now=now, limit=limit),
        )
        .filter(
            Q(send_queued_at__isnull=True)
            | Q(send_queued_at__lt=F("lease_expires_at"))
            | Q(send_queued_at__lt=again_before)
        )
        .values_list("pk", "document_id")
    )
    Transmission.objects.filter(pk__in=[pk for pk, _ in expired]).update(
        send_queued_at=now
    )
    for _, document_id in expired:
        enqueue_on_commit(SETTLE_CLAIM, document_id)
    return len(expired)


@transaction.atomic
def outcomes_unknown_queue_due(*, now: datetime, limit: int = 500) -> int:
    """Queue the settling by key of documents whose outcome is unknown, a moment
    after it became so and then every few seconds until settled; returns how
    many."""
    settle_before = now - timedelta(seconds=SETTLE_EVERY_SECONDS)
    due = list(
        Transmission.objects.filter(
            state=TransmissionState.PENDING,
            document__status=DocumentStatus.OUTCOME_UNKNOWN,
            document__status_changed_at__lte=now
            - timedelta(seconds=SETTLE_AFTER_SECONDS),
        )
        .filter(Q(send_queued_at__isnull=True) | Q(send_queued_at__lt=settle_before))
        .values_list("pk", "document_id")[:limit]
    )
    Transmission.objects.filter(pk__in=[pk for pk, _ in due]).update(send_queued_at=now)
    for _, document_id in due:
        enqueue_on_commit(SETTLE, document_id)
    return len(due)
