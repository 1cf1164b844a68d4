"""Hand-offs between stages, and the sweep that finds work whose enqueue was lost."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from docflow.models import Document, DocumentStatus
from docflow.preparation import (
    Prepared,
    document_has_conversion,
    document_prepare,
    documents_prepare,
    waiting_for_preparation,
)
from docflow.services import preparation_wake_up, preparation_wake_up_clear
from transmissions.engine.moves import work_item_follow
from transmissions.models import OutboundHalt, Transmission, TransmissionState
from transmissions.pipeline.converting import conversions_wake
from transmissions.pipeline.sending import SendResult, documents_send
from transmissions.queue import (
    CONVERT,
    PREPARE,
    SEND,
    SETTLE,
    enqueue_on_commit,
)

S = DocumentStatus


@transaction.atomic
def document_prepare_for_sending(
    *, document_id: int, actor: Any = None, queue_sends: bool = True
) -> Prepared:
    """Prepare one submitted document (HTML and images converted first, bounded);
    a held one gets its work item, and whatever is ready to send is queued once
    this commits (unless the caller sends it). One still waiting for a conversion
    slot gets its conversion task."""
    prepared = document_prepare(document_id=document_id, actor=actor)
    if prepared.converting:
        enqueue_on_commit(CONVERT, document_id)
        return prepared
    if not (prepared.sendable and prepared.document.status == S.READY):
        # Just prepared means submitted a moment ago: it never needed anybody, so
        # there is no item to close and none to open. Everything else is synced.
        work_item_follow(document=prepared.document, actor=actor)
    if queue_sends:
        for document in prepared.sendable:
            enqueue_on_commit(SEND, document.pk)
    return prepared


@dataclass(frozen=True)
class PreparedAndSent:
    """What one batch did: documents prepared (ready or held), send results, and
    the documents whose preparation failed (left submitted)."""

    prepared: int
    sent: list[SendResult]
    failed: dict[int, Exception]

    def __str__(self) -> str:
        outcomes = Counter(result.outcome for result in self.sent)
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        return f"prepared {self.prepared}; sent: {summary or 'none'}"


def documents_prepare_and_send(
    *, document_id: int, actor: Any = None, limit: int | None = None
) -> PreparedAndSent:
    """Prepare ``document_id`` (if it is still submitted) and the oldest other
    submitted documents nobody else is preparing, up to the batch size, in one
    transaction, then send what is ready together: the per-document cost of locks,
    history and audit is shared, which is what keeps the engine ahead of intake.
    Held documents get their work item in the same transaction; the parts of a
    split document are queued, to go out side by side. If this task's own document
    failed, that failure is raised once the rest are sent, so the task is retried
    for it.

    Intake queues this task only when none is queued that has not yet looked
    (``docflow.services.preparation_wake_up``): with fewer than a batch waiting,
    the task first lingers a moment (``DOCFLOW_PREPARE_LINGER_SECONDS``) while more
    arrive, then clears the wake-up and takes what waits. A full batch may leave
    more behind, so it wakes a successor for them.

    HTML and images are never converted here: the batch hands them to the isolated
    conversion step (``transmissions.pipeline.converting``), one conversion task
    each, so no render can delay, roll back or kill the batch. A task for a
    document already handed over (the dispatch sweep's, when a conversion was
    lost) wakes the oldest waiting conversions that the free slots can take."""
    limit = limit or settings.DOCFLOW_PREPARE_BATCH
    waiting = waiting_for_preparation()
    linger = settings.DOCFLOW_PREPARE_LINGER_SECONDS
    if linger > 0 and 0 < waiting[:limit].count() < limit:
        time.sleep(linger)
    # From here the next document stored queues a task of its own; every one
    # stored before is committed by now, and seen below.
    preparation_wake_up_clear()
    with transaction.atomic():
        batch = documents_prepare(first_id=document_id, limit=limit, actor=actor)
        together: list[int] = []
        for prepared in batch.prepared:
            if prepared.document.status != S.READY:
                work_item_follow(document=prepared.document, actor=actor)
            if len(prepared.sendable) == 1:
                together.append(prepared.sendable[0].pk)
            else:
                for document in prepared.sendable:
                    enqueue_on_commit(SEND, document.pk)
        for converting in batch.converting:
            enqueue_on_commit(CONVERT, converting)
        taken = {p.document.pk for p in batch.prepared} | set(batch.failed)
        lost_conversion = (
            document_id not in taken
            and document_id not in batch.converting
            and document_has_conversion(document_id=document_id)
        )
    if lost_conversion:
        # Wake what the free slots can take (the oldest first), not one task per
        # sweep per waiting document: a backlog of conversions costs nothing more.
        conversions_wake(actor=actor)
    sent = documents_send(document_ids=together, actor=actor) if together else []
    if len(batch.prepared) + len(batch.failed) >= limit:
        following = waiting.order_by("pk").values_list("pk", flat=True).first()
        if following is not None:
            preparation_wake_up(following)
    if document_id in batch.failed:
        raise batch.failed[document_id]
    return PreparedAndSent(prepared=len(batch.prepared), sent=sent, failed=batch.failed)


@dataclass(frozen=True)
class Dispatched:
    prepare: int
    send: int
    settle: int


def pipeline_dispatch_due(*, limit: int = 1000) -> Dispatched:
    """Queue work that is due and not otherwise queued: submitted documents whose
    enqueue was lost, ready documents whose backoff has passed (and that no halt
    of their organisation, nor an open circuit of their destination, holds), and
    documents whose outcome is unknown. The clock queues retries on time; this
    sweep is what finds work whose queueing was lost."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.DOCFLOW_DISPATCH_GRACE_SECONDS)
    submitted = list(
        Document.objects.filter(status=S.SUBMITTED, status_changed_at__lt=grace)
        .order_by("status_changed_at")
        .values_list("pk", flat=True)[:limit]
    )
    blocking = [
        halt
        for halt in OutboundHalt.objects.filter(closed_at__isnull=True)
        if not (halt.kind == "circuit_open" and halt.retry_at and halt.retry_at <= now)
    ]
    waiting = Transmission.objects.filter(
        document=OuterRef("pk"),
        state=TransmissionState.PENDING,
        next_attempt_at__gt=now,
    )
    halted_organisations = [
        halt.sending_organisation_id
        for halt in blocking
        if not halt.destination_ods_code
    ]
    halted_destinations = Q(pk__in=[])
    for halt in blocking:
        if halt.destination_ods_code:
            halted_destinations |= Q(
                sending_organisation_id=halt.sending_organisation_id,
                destination_ods_code=halt.destination_ods_code,
            )
    ready: list[int] = []
    if not any(halt.sending_organisation_id is None for halt in blocking):
        ready = list(
            Document.objects.filter(status=S.READY, status_changed_at__lt=grace)
            .exclude(part_count__isnull=False, part_number__isnull=True)
            .exclude(sending_organisation_id__in=halted_organisations)
            .exclude(halted_destinations)
            .exclude(Exists(waiting))
            .order_by("status_changed_at")
            .values_list("pk", flat=True)[:limit]
        )
    unknown = list(
        Document.objects.filter(status=S.OUTCOME_UNKNOWN)
        .order_by("status_changed_at")
        .values_list("pk", flat=True)[:limit]
    )
    with transaction.atomic():
        for pk in submitted:
            enqueue_on_commit(PREPARE, pk)
        for pk in ready:
            enqueue_on_commit(SEND, pk)
        for pk in unknown:
            enqueue_on_commit(SETTLE, pk)
    return Dispatched(prepare=len(submitted), send=len(ready), settle=len(unknown))
