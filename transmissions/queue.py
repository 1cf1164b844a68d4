"""Enqueueing by dotted task name, after the transaction that made the work commits."""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task

PREPARE = "transmissions.tasks.prepare_document"
CONVERT = "transmissions.tasks.convert_document"
SEND = "transmissions.tasks.send_document"
SETTLE = "transmissions.tasks.settle_outcome_unknown"
SETTLE_CLAIM = "transmissions.tasks.settle_expired_claim"
TRACK = "transmissions.tasks.track"


def enqueue_on_commit(task: str, *args) -> None:
    """Queue ``task(*args)`` once the surrounding transaction commits (now if none)."""
    transaction.on_commit(lambda: async_task(task, *args))
