"""The clock: once a second, queue what has come due so that nothing waits for a
sweep.

A round (run by the tracker's loop, see ``tracker``, between its tracking rounds)
queues:

- retries whose ``next_attempt_at`` has come (``ready`` documents with a pending
  transmission), unless a halt or an open circuit holds them;
- first sends whose task was lost (``ready`` for READY_GRACE_SECONDS with no
  transmission: the task that was to send it died with its cluster), unless a
  halt holds them;
- trial sends of open circuits whose ``retry_at`` has come (one per circuit: the
  first success closes it and queues the rest, see ``controls``);
- the settling by idempotency key of claims whose lease expired (their worker
  died, see ``leases``), and of documents whose outcome is unknown;
- conversions waiting for a slot that is free (see ``converting``).

Each thing queued is marked (``send_queued_at``, ``trial_queued_at``; a first send
in the loop's memory, ``queued``) so it is queued once; what was queued and never
taken (its task lost with a killed cluster) is queued again after
DOCFLOW_CLOCK_REQUEUE_SECONDS. Every task queued re-checks its document, so a
second copy does nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from docflow.models import Channel, Document, DocumentStatus
from transmissions.engine.controls import (
    circuit_waiting_documents,
    halt_blocks,
    outbound_blocking_halt,
)
from transmissions.engine.leases import claims_expired
from transmissions.models import HaltKind, OutboundHalt, Transmission, TransmissionState
from transmissions.pipeline.converting import conversions_queue_waiting
from transmissions.pipeline.settling import Settled, sending_claim_settle
from transmissions.queue import SEND, SETTLE, SETTLE_CLAIM, enqueue_on_commit

# A document whose outcome became unknown is left this long to the changes feed
# (which matches it by key) before it is settled by asking Connect; then again
# this often while Connect cannot answer.
SETTLE_AFTER_SECONDS = 2
SETTLE_EVERY_SECONDS = 5
# A first send is sent by the task that prepared the document, at once: ready this
# long without a transmission, its task was lost.
READY_GRACE_SECONDS = 10


@dataclass(frozen=True)
class ClockRound:
    retries: int
    trials: int
    claims: int
    unknown: int
    lost: int = 0
    conversions: int = 0


def clock_round(
    *,
    now: datetime | None = None,
    limit: int = 500,
    queued: dict[int, datetime] | None = None,
    conversions: dict[int, datetime] | None = None,
    settle_for: float = 0.0,
) -> ClockRound:
    """Queue everything due now: retries at their ``next_attempt_at``, circuit
    trials at their ``retry_at``, first sends whose task was lost, the settling of
    expired claims and of unknown outcomes; each once (again only after
    DOCFLOW_CLOCK_REQUEUE_SECONDS). ``queued`` and ``conversions``: the first
    sends and the conversions this loop queued, and when (kept between rounds by
    the caller); ``settle_for``: how long this round may spend settling expired
    claims itself rather than by tasks."""
    now = now or timezone.now()
    queued = {} if queued is None else queued
    conversions = {} if conversions is None else conversions
    halts = list(
        OutboundHalt.objects.filter(closed_at__isnull=True).select_related(
            "sending_organisation"
        )
    )
    return ClockRound(
        retries=retries_queue_due(now=now, halts=halts, limit=limit),
        trials=circuit_trials_queue_due(now=now, halts=halts),
        claims=claims_expired_queue(now=now, limit=limit, settle_for=settle_for),
        unknown=outcomes_unknown_queue_due(now=now, limit=limit),
        lost=first_sends_queue_lost(now=now, halts=halts, queued=queued, limit=limit),
        conversions=conversions_queue_waiting(
            now=now,
            queued=conversions,
            requeue_seconds=settings.DOCFLOW_CLOCK_REQUEUE_SECONDS,
        ),
    )


def _halts_of(halts: list[OutboundHalt], sending_organisation_id: int) -> list:
    return [
        halt
        for halt in halts
        if halt.sending_organisation_id in (None, sending_organisation_id)
    ]


def _held(
    halts: list[OutboundHalt], sending_organisation_id: int, destination: str, now
) -> bool:
    """Whether a halt holds a send, or an open circuit does, even past its
    retry_at: its trial goes first, and its closing queues the rest."""
    own = _halts_of(halts, sending_organisation_id)
    circuit = any(
        halt.kind == HaltKind.CIRCUIT_OPEN
        and halt.destination_ods_code in ("", destination)
        for halt in own
    )
    return circuit or (
        outbound_blocking_halt(
            sending_organisation_id=sending_organisation_id,
            destination_ods_code=destination,
            now=now,
            halts=own,
        )
        is not None
    )


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
        if _held(halts, sending_organisation_id, destination, now):
            continue  # its halt's lifting (or circuit's trial) queues it
        queued.append(pk)
        enqueue_on_commit(SEND, document_id)
    Transmission.objects.filter(pk__in=queued).update(send_queued_at=now)
    return len(queued)


@transaction.atomic
def first_sends_queue_lost(
    *,
    now: datetime,
    halts: list[OutboundHalt],
    queued: dict[int, datetime],
    limit: int = 500,
) -> int:
    """Queue the send of ``ready`` documents left without one (no transmission
    READY_GRACE_SECONDS after they became ready: the task that was to send them
    died), unless a halt holds them; each once per DOCFLOW_CLOCK_REQUEUE_SECONDS
    (``queued`` remembers when); returns how many."""
    again_before = _requeue_before(now)
    for document_id in [pk for pk, at in queued.items() if at < again_before]:
        del queued[document_id]
    lost = (
        Document.objects.filter(
            status=DocumentStatus.READY,
            status_changed_at__lt=now - timedelta(seconds=READY_GRACE_SECONDS),
        )
        .exclude(part_count__isnull=False, part_number__isnull=True)
        .exclude(
            Exists(
                Transmission.objects.filter(
                    document=OuterRef("pk"), state=TransmissionState.PENDING
                )
            )
        )
        .exclude(pk__in=list(queued))
        .order_by("status_changed_at")
        .values_list("pk", "sending_organisation_id", "destination_ods_code")[:limit]
    )
    count = 0
    for document_id, sending_organisation_id, destination in lost:
        if _held(halts, sending_organisation_id, destination, now):
            continue
        queued[document_id] = now
        enqueue_on_commit(SEND, document_id)
        count += 1
    return count


@transaction.atomic
def circuit_trials_queue_due(*, now: datetime, halts: list[OutboundHalt]) -> int:
    """At the end of an open circuit's cool-down, queue one trial send through it
    (a ready document it holds back that nothing else holds), once per cool-down
    (again after DOCFLOW_CLOCK_REQUEUE_SECONDS if it was lost); returns how
    many."""
    trials = 0
    for halt in halts:
        if halt.kind != HaltKind.CIRCUIT_OPEN or halt.retry_at is None:
            continue
        queued_at = halt.trial_queued_at
        if halt.retry_at > now or (
            queued_at is not None
            and queued_at >= halt.retry_at
            and queued_at >= _requeue_before(now)
        ):
            continue
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
            marked = OutboundHalt.objects.filter(
                pk=halt.pk, closed_at__isnull=True, retry_at=halt.retry_at
            ).update(trial_queued_at=now)
            if marked:  # else closed or pushed back meanwhile
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


def claims_expired_queue(
    *, now: datetime, limit: int = 500, settle_for: float = 0.0
) -> int:
    """Settle by key every claim whose lease expired, once (again after a lease's
    length if its settler died too): here, for up to ``settle_for`` seconds (so a
    backlog in the queue does not hold them up), the rest by a task each; returns
    how many."""
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
    deadline = time.monotonic() + settle_for
    for _, document_id in expired:
        if time.monotonic() < deadline:
            settled = sending_claim_settle(document_id=document_id)
            if settled != Settled.UNKNOWN:
                continue
            deadline = 0.0  # Connect cannot answer now: leave the rest to tasks
        enqueue_on_commit(SETTLE_CLAIM, document_id)
    return len(expired)


@transaction.atomic
def outcomes_unknown_queue_due(*, now: datetime, limit: int = 500) -> int:
    """Queue the settling by key of documents sent over Connect whose outcome is
    unknown, a moment after it became so and then every few seconds until
    settled (MESH's are settled by the sweep, by their local id); returns how
    many."""
    settle_before = now - timedelta(seconds=SETTLE_EVERY_SECONDS)
    due = list(
        Transmission.objects.filter(
            state=TransmissionState.PENDING,
            channel=Channel.CONNECT,
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
