"""The engine's conversion step: one document's HTML or image converted outside
every preparation batch (``docflow.preparation.converting``), then its work item
and its send, as a preparation batch does for PDFs.

A task that finds every conversion slot busy returns at once; whoever frees a
slot queues the oldest waiting conversions, and the dispatch sweep's prepare task
queues a conversion that nobody did (``documents_prepare_and_send``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from docflow.models import DocumentStatus
from docflow.preparation import (
    conversion_claim,
    conversion_execute,
    conversion_slot_release,
    conversion_slots_free,
    conversions_waiting,
    document_prepare_converted,
)
from transmissions.engine.moves import work_item_follow
from transmissions.pipeline.sending import SendResult, documents_send
from transmissions.queue import CONVERT, SEND, enqueue_on_commit


@dataclass(frozen=True)
class Converted:
    """What one conversion step did: ``waiting`` (no slot, or nothing to do),
    ``retry`` (the child died; tried again), or the document's state after it."""

    outcome: str
    sent: list[SendResult]

    def __str__(self) -> str:
        sent = ", ".join(result.outcome for result in self.sent)
        return f"{self.outcome}; sent: {sent or 'none'}"


def conversions_wake(*, actor: Any = None) -> list[int]:
    """Queue a conversion task for each waiting conversion a free slot could
    take, oldest first (duplicates are harmless: the claim is compare-and-set)."""
    waiting = conversions_waiting(limit=conversion_slots_free())
    with transaction.atomic():
        for document_id in waiting:
            enqueue_on_commit(CONVERT, document_id)
    return waiting


def conversions_queue_waiting(
    *, now: datetime, queued: dict[int, datetime], requeue_seconds: float
) -> int:
    """The clock's step: queue a conversion task for each waiting conversion a free
    slot could take (a slot freed by a task that found none, or a dead worker's
    lease that ran out), each once per ``requeue_seconds`` (``queued`` remembers
    when, kept between rounds by the caller); returns how many. Costs one count
    and one indexed read of usually empty tables a round."""
    again_before = now - timedelta(seconds=requeue_seconds)
    for document_id in [pk for pk, at in queued.items() if at < again_before]:
        del queued[document_id]
    free = conversion_slots_free()
    if free <= 0:
        return 0
    waiting = [
        document_id
        for document_id in conversions_waiting(limit=free + len(queued))
        if document_id not in queued
    ][:free]
    with transaction.atomic():
        for document_id in waiting:
            queued[document_id] = now
            enqueue_on_commit(CONVERT, document_id)
    return len(waiting)


def document_convert_and_send(*, document_id: int, actor: Any = None) -> Converted:
    """Convert one submitted document in a bounded child process when a slot is
    free, prepare it (ready, or held once with its work item), send what is ready,
    then wake the conversions waiting for the slot it freed."""
    claim = conversion_claim(document_id=document_id)
    if claim is None:
        return Converted(outcome="waiting", sent=[])
    try:
        outcome, source = conversion_execute(claim=claim)
        with transaction.atomic():
            prepared = document_prepare_converted(
                claim=claim, outcome=outcome, source_sha256=source, actor=actor
            )
            document = prepared.document
            if prepared.converting:
                enqueue_on_commit(CONVERT, document_id)
            elif document.status != DocumentStatus.READY:
                work_item_follow(document=document, actor=actor)
            together = [d.pk for d in prepared.sendable]
            if len(together) > 1:
                # The parts of a split document go out side by side.
                for pk in together:
                    enqueue_on_commit(SEND, pk)
                together = []
    finally:
        conversion_slot_release(claim=claim)
    sent = documents_send(document_ids=together, actor=actor) if together else []
    conversions_wake(actor=actor)
    return Converted(
        outcome="retry" if prepared.converting else str(document.status), sent=sent
    )
