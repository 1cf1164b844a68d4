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


def preparation_tasks_withdraw(document_ids, *, scan: int = 1000) -> int:
    """Delete the queued preparation tasks of documents a batch has just prepared
    (call in that batch's transaction): they would only find their documents
    taken. The oldest ``scan`` rows no worker has taken are read (a batch takes the
    oldest documents, so their tasks are among them); rows a worker holds are left
    to run, harmlessly. Only the ORM broker's queue can be read; returns how many
    went."""
    wanted = set(document_ids)
    if not wanted or not settings.Q_CLUSTER.get("orm"):
        return 0
    now = timezone.now()
    rows = []
    for row in OrmQ.objects.filter(lock__lt=now).order_by("pk")[:scan]:
        task = row.task  # decoded and verified as the pusher does; junk decodes to {}
        args = task.get("args") or ()
        if task.get("func") == PREPARE and len(args) == 1 and args[0] in wanted:
            rows.append(row.pk)
    if not rows:
        return 0
    deleted, _ = OrmQ.objects.filter(pk__in=rows, lock__lt=now).delete()
    return deleted
