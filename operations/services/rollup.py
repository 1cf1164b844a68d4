"""Hourly counts rolled up from the document history, so the dashboard reads a few
hundred rows instead of scanning every document."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from docflow.models import Document, DocumentStatus
from operations.models import HourlyCount, HourlyStateCount

HOUR = timedelta(hours=1)
# A history row is written just after the status change it records.
HISTORY_LAG = timedelta(minutes=1)
# Reason codes are kept for the states where the reason says what went wrong.
REASONED_STATES = frozenset(
    {DocumentStatus.REJECTED, DocumentStatus.HELD, DocumentStatus.SYSTEM_ERROR}
)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def hourly_counts_roll_up(*, hour: datetime) -> int:
    """Recount one hour: documents that reached each state in it, by destination,
    document type and (for failures) reason. Safe to run again: it replaces the hour."""
    start = hour_floor(hour)
    end = start + HOUR
    history = Document.history.model.objects.filter(
        history_date__gte=start,
        history_date__lt=end + HISTORY_LAG,
        status_changed_at__gte=start,
        status_changed_at__lt=end,
    )
    seen = set()
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for document_id, status, destination, document_type, reason in history.values_list(
        "id", "status", "destination_ods_code", "document_type", "status_reason"
    ).iterator(chunk_size=5000):
        if (document_id, status) in seen:
            continue
        seen.add((document_id, status))
        reason = reason[:64] if status in REASONED_STATES else ""
        counts[(status, destination, document_type, reason)] += 1
    HourlyCount.objects.filter(hour=start).delete()
    HourlyCount.objects.bulk_create(
        HourlyCount(
            hour=start,
            status=status,
            destination_ods_code=destination,
            document_type=document_type,
            reason=reason,
            count=count,
        )
        for (status, destination, document_type, reason), count in counts.items()
    )
    by_state: Counter[str] = Counter()
    for (status, *_), count in counts.items():
        by_state[status] += count
    HourlyStateCount.objects.filter(hour=start).delete()
    HourlyStateCount.objects.bulk_create(
        HourlyStateCount(hour=start, status=status, count=count)
        for status, count in by_state.items()
    )
    return sum(counts.values())


def hourly_counts_roll_up_recent(*, hours: int = 2, now=None) -> int:
    """Recount the current hour and the ones before it (scheduled every few minutes)."""
    current = hour_floor(now or timezone.now())
    return sum(
        hourly_counts_roll_up(hour=current - HOUR * back) for back in range(hours)
    )
