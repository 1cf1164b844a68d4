"""Intake backpressure: refuse new documents while the preparation backlog is deep.

Bursts (clinic days, a backlog cleared at a source) then queue at the sender, which
retries with the same idempotency key, instead of piling up in docflow.
"""

from __future__ import annotations

from django.conf import settings

from docflow.errors import IntakeBusy
from docflow.models import Document, DocumentStatus


def preparation_backlog_at_least(depth: int) -> bool:
    """Whether at least ``depth`` documents are submitted and not yet prepared.

    A bounded count (``LIMIT depth``) on the status index: it never reads more than
    ``depth`` index entries, however deep the backlog.
    """
    if depth <= 0:
        return False
    waiting = (
        Document.objects.filter(status=DocumentStatus.SUBMITTED)
        .order_by()
        .values("pk")[:depth]
    )
    return waiting.count() >= depth


def intake_backpressure_check() -> None:
    """Raise IntakeBusy when ``DOCFLOW_INTAKE_BACKPRESSURE_DEPTH`` documents (or
    more) wait for preparation; a depth of 0 turns the check off."""
    if preparation_backlog_at_least(settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH):
        raise IntakeBusy(settings.DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS)
