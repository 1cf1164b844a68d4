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


def intake_backpressure_check(
    *, source_system: str = "", idempotency_key: str = ""
) -> None:
    """Raise IntakeBusy when ``DOCFLOW_INTAKE_BACKPRESSURE_DEPTH`` documents (or
    more) wait for preparation; a depth of 0 turns the check off.

    A replay (``source_system`` already holds ``idempotency_key``) is let through
    even then: it stores nothing new, and its sender learns the document was taken.
    """
    if not preparation_backlog_at_least(settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH):
        return
    if (
        idempotency_key
        and Document.objects.filter(
            source_system=source_system, idempotency_key=idempotency_key
        ).exists()
    ):
        return
    raise IntakeBusy(settings.DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS)
