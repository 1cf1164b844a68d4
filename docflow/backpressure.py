"""Intake backpressure: refuse new documents while the preparation backlog is deep.

Bursts (clinic days, a backlog cleared at a source) then queue at the sender, which
retries with the same idempotency key, instead of piling up in docflow.

A backlog far below the depth is not counted again for every document: each
process remembers for ``CLEAR_FOR_SECONDS`` that it saw one at least
``CLEAR_HEADROOM`` documents short of the depth, and lets documents through without
a query until then (intake stores far fewer than that many documents a second, so
the backlog cannot reach the depth unseen). Within the headroom every document is
counted, so the depth is applied as exactly as before where it matters; a backlog
that drains is seen at once, since only "clear" answers are remembered.
"""

from __future__ import annotations

import time

from django.conf import settings

from docflow.errors import IntakeBusy
from docflow.models import Document, DocumentStatus

# A backlog at least this many documents short of the depth is clear for a while.
CLEAR_HEADROOM = 500
CLEAR_FOR_SECONDS = 1.0

# (depth, monotonic deadline) of this process's last clear answer.
_clear: dict[str, tuple[int, float]] = {}


def preparation_backlog_count(limit: int) -> int:
    """How many documents are submitted and not yet prepared, counted up to
    ``limit`` (``LIMIT limit`` on the status index: it never reads more index
    entries than that, however deep the backlog)."""
    waiting = (
        Document.objects.filter(status=DocumentStatus.SUBMITTED)
        .order_by()
        .values("pk")[:limit]
    )
    return waiting.count()


def preparation_backlog_at_least(depth: int) -> bool:
    """Whether at least ``depth`` documents are submitted and not yet prepared
    (a bounded count, see :func:`preparation_backlog_count`)."""
    if depth <= 0:
        return False
    return preparation_backlog_count(depth) >= depth


def preparation_backlog_clear(depth: int) -> bool:
    """Whether the backlog is known to be short of ``depth`` without counting it
    again: this process counted it within ``CLEAR_FOR_SECONDS`` and found it at
    least ``CLEAR_HEADROOM`` documents short. Otherwise counts it, remembers a
    clear answer, and says whether it is short of ``depth``."""
    if depth <= 0:
        return True
    now = time.monotonic()
    remembered = _clear.get("backlog")
    if remembered is not None and remembered[0] == depth and now < remembered[1]:
        return True
    waiting = preparation_backlog_count(depth)
    if depth - waiting >= CLEAR_HEADROOM:
        _clear["backlog"] = (depth, now + CLEAR_FOR_SECONDS)
    else:
        _clear.pop("backlog", None)
    return waiting < depth


def preparation_backlog_forget() -> None:
    """Forget the remembered clear answer: the next check counts."""
    _clear.pop("backlog", None)


def intake_backpressure_check(
    *, source_system: str = "", idempotency_key: str = ""
) -> None:
    """Raise IntakeBusy when ``DOCFLOW_INTAKE_BACKPRESSURE_DEPTH`` documents (or
    more) wait for preparation; a depth of 0 turns the check off. A backlog far
    short of the depth is counted about once a second per process, not for every
    document (see the module's docstring).

    A replay (``source_system`` already holds ``idempotency_key``) is let through
    even then: it stores nothing new, and its sender learns the document was taken.
    """
    if preparation_backlog_clear(settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH):
        return
    if (
        idempotency_key
        and Document.objects.filter(
            source_system=source_system, idempotency_key=idempotency_key
        ).exists()
    ):
        return
    raise IntakeBusy(settings.DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS)
