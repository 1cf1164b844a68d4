"""Enqueueing by dotted task name, after the transaction that made the work commits."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ
from django_q.tasks import async_task

PREPARE = "transmissions.tasks.prepare_document"
SEND = "transmissions.tasks.send_document"
SETTLE = "transmissions.tasks.settle_outcome_unknown"
TRACK = "transmissions.tasks.track"


def enqueue_on_commit(task: str, *args) -> None:
    """Queue ``task(*args)`` once the surrounding transaction commits (now if none)."""
    transaction.on_commit(lambda: async_task(task, *args))


def preparation_tasks_withdraw(documents) -> int:
    """Delete the queued preparation tasks of documents a batch has just prepared
    (call in that batch's transaction): they would only find their documents
    taken. Rows a worker has already taken (locked until later) are left to run,
    harmlessly. Only the ORM broker's rows are known; returns how many went."""
    rows = [d.preparation_task for d in documents if d.preparation_task]
    if not rows or not settings.Q_CLUSTER.get("orm"):
        return 0
    deleted, _ = OrmQ.objects.filter(pk__in=rows, lock__lt=timezone.now()).delete()
    return deleted
