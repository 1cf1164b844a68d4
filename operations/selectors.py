"""Reads for the operations pages, /healthz and /metrics: counts and ages only,
never patient data; the dashboard reads the hourly roll-up, not every document."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Min, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from casework.models import ACTIVE_STATUSES, WorkItem
from docflow.models import Document, DocumentStatus
from operations.models import (
    HourlyCount,
    HourlyStateCount,
    Incident,
    IncidentState,
    Snapshot,
)
from operations.watched import stuck_documents_find
from transmissions.models import (
    HaltKind,
    MeshQuarantinedAnswer,
    MeshQuarantineStatus,
    OutboundHalt,
)

UNRESOLVED = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)
# A document counts as "through" an hour when it reached one of these.
THROUGHPUT_STATES = (
    DocumentStatus.SUBMITTED,
    DocumentStatus.RECEIVED,
    DocumentStatus.ACCEPTED,
    DocumentStatus.REJECTED,
)


def documents_by_state_count() -> dict[str, int]:
    """Every lifecycle state with its number of documents (zeros included), counted
    now: a scan of the documents, so only the scheduled snapshot calls it."""
    counts = dict(
        Document.objects.order_by()
        .values_list("status")
        .annotate(n=Count("*"))
        .values_list("status", "n")
    )
    return {state: counts.get(state, 0) for state in DocumentStatus.values}


def snapshot_read(key: str) -> Snapshot | None:
    return Snapshot.objects.filter(key=key).first()


def documents_by_state() -> tuple[dict[str, int], datetime | None]:
    """Documents by state as the last snapshot saw them, and when; counted now only
    when no snapshot has been taken yet."""
    snapshot = snapshot_read("documents_by_state")
    if snapshot is None:
        return documents_by_state_count(), None
    counts = snapshot.data
    return {s: counts.get(s, 0) for s in DocumentStatus.values}, snapshot.taken_at


def oldest_ready_age_seconds(*, now=None) -> float:
    """How long the longest-waiting ready document has waited (0 when none)."""
    now = now or timezone.now()
    oldest = Document.objects.filter(status=DocumentStatus.READY).aggregate(
        oldest=Min("status_changed_at")
    )["oldest"]
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


def incidents_open_counts() -> dict[tuple[str, str], int]:
    """Unresolved incidents by kind and severity."""
    return {
        (row["kind"], row["severity"]): row["n"]
        for row in Incident.objects.filter(state__in=UNRESOLVED)
        .order_by()
        .values("kind", "severity")
        .annotate(n=Count("id"))
    }


def incidents_open_list(*, limit: int = 20) -> list[Incident]:
    return list(Incident.objects.filter(state__in=UNRESOLVED)[:limit])


def work_items_open_by_category() -> dict[str, int]:
    return dict(
        WorkItem.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values_list("category")
        .annotate(n=Count("id"))
        .values_list("category", "n")
    )


def outbound_halts_open_counts() -> dict[str, int]:
    return dict(
        OutboundHalt.objects.filter(closed_at__isnull=True)
        .exclude(kind=HaltKind.DESTINATION_PAUSE)  # shown as pauses, not halts
        .order_by()
        .values_list("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
    )


def mesh_answers_kept_open(*, now=None) -> tuple[dict[str, int], float]:
    """MESH answers kept for a person and not yet applied or dismissed, by kind,
    and how long the oldest has waited (seconds; 0 with none): read from the
    partial set of open rows (indexed by status), whatever the number closed."""
    now = now or timezone.now()
    open_answers = MeshQuarantinedAnswer.objects.filter(
        status=MeshQuarantineStatus.OPEN
    ).order_by()
    counts = dict(
        open_answers.values_list("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
    )
    oldest = open_answers.aggregate(oldest=Min("received_at"))["oldest"]
    return counts, (now - oldest).total_seconds() if oldest else 0.0


def stuck_counts(*, now=None) -> list[dict]:
    """Per watched state and profile with documents over the watchdog's threshold,
    as the watchdog last found them (found now, by the watchdog's own query, when it
    has not run yet)."""
    snapshot = snapshot_read("stuck")
    if snapshot is not None:
        return snapshot.data["rows"]
    return [item.as_row() for item in stuck_documents_find(now=now)]


def throughput_hourly(*, hours: int = 24, now=None) -> dict:
    """Documents reaching the throughput states per hour, last ``hours`` hours."""
    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    labels = [start + timedelta(hours=h) for h in range(hours)]
    series: dict[str, list[int]] = {s: [0] * hours for s in THROUGHPUT_STATES}
    for row in (
        HourlyStateCount.objects.filter(hour__gte=start, status__in=THROUGHPUT_STATES)
        .values("hour", "status")
        .annotate(n=Sum("count"))
    ):
        index = int((row["hour"] - start).total_seconds() // 3600)
        if 0 <= index < hours:
            series[row["status"]][index] = row["n"]
    return {"labels": labels, "series": series}


def throughput_daily(*, days: int = 14, now=None) -> dict:
    """The same per day (UTC days of the hourly roll-up)."""
    now = now or timezone.now()
    today = now.date()
    labels = [today - timedelta(days=d) for d in range(days - 1, -1, -1)]
    series: dict[str, list[int]] = {s: [0] * days for s in THROUGHPUT_STATES}
    since = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=days - 1
    )
    for row in (
        HourlyStateCount.objects.filter(hour__gte=since, status__in=THROUGHPUT_STATES)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day", "status")
        .annotate(n=Sum("count"))
    ):
        index = (row["day"] - labels[0]).days
        if 0 <= index < days:
            series[row["status"]][index] = row["n"]
    return {"labels": labels, "series": series}


def rejections_breakdown(*, days: int = 7, now=None, limit: int = 10) -> dict:
    """Rejections in the last ``days`` days by reason, destination and document type."""
    now = now or timezone.now()
    rows = HourlyCount.objects.filter(
        status=DocumentStatus.REJECTED, hour__gte=now - timedelta(days=days)
    )
    result = {}
    for key in ("reason", "destination_ods_code", "document_type"):
        totals: dict[str, int] = defaultdict(int)
        for row in rows.values(key).annotate(n=Sum("count")).order_by("-n")[:limit]:
            totals[row[key] or "unknown"] = row["n"]
        result[key] = dict(totals)
    return result
