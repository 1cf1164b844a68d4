"""Retention: how long each class of data is kept, and the purge that enforces it.

Data classes and their rules (periods in days, from settings read when a run
starts; the names and defaults are in :class:`RetentionPolicy`):

``intermediate``
    A payload version that a newer version of the same document superseded (the
    original after conversion, a converted PDF after optimising). Due
    ``DOCFLOW_RETENTION_INTERMEDIATE_DAYS`` after the next version was made.
``finished``
    Every remaining payload of a document that reached a final state (accepted,
    rejection resolved, cancelled, or delivered where the destination profile
    never reports accepted; a split parent once all its parts are final). Due
    ``DOCFLOW_RETENTION_FINISHED_DAYS`` after the document (or its last part)
    entered that state.
``open_work``
    Payloads of a document that needs attention or has an open work item. Never
    purged while that lasts; the clock of the classes above decides afterwards.
    A version whose ``retain_until`` is in the future (a hold for an
    investigation) is never purged either.
``audit`` and ``access_log``
    Audit events and access log rows are kept: they are hash-chained and, on
    PostgreSQL, a trigger refuses UPDATE and DELETE on their tables. Each purge
    run counts the rows older than ``DOCFLOW_RETENTION_AUDIT_DAYS`` and
    ``DOCFLOW_RETENTION_ACCESS_LOG_DAYS`` in its audit event. Removing them is an
    IG decision carried out by a documented admin procedure, never by this code:
    run ``manage.py audit_checkpoint --full``; export the rows up to a chosen
    sequence (``pg_dump --table=audit_auditevent --table=audit_accesslog``) to
    the records archive and check the export; in a maintenance window a database
    owner disables the append-only triggers, deletes rows up to that sequence,
    re-enables the triggers and records an ``audit.archived`` event naming the
    sequence range and the hash of the last archived event, from which later
    verification starts.

A purged version keeps its row (sizes, checksums, key id: the proof of what was
sent) with ``purged_at`` set; only the encrypted blob is deleted, after commit.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from audit.models import AccessLog, AuditEvent
from audit.services import audit_record
from casework.models import ACTIVE_STATUSES, WorkItem
from docflow.models import (
    ATTENTION_STATES,
    FINAL_STATES,
    DestinationProfile,
    Document,
    DocumentStatus,
    PayloadVersion,
)
from docflow.payloads.store import payload_blobs_purge

logger = logging.getLogger(__name__)

INTERMEDIATE = "intermediate"
FINISHED = "finished"
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class RetentionPolicy:
    """Retention periods, read from settings (defaults in brackets, in days).

    ``DOCFLOW_RETENTION_INTERMEDIATE_DAYS`` [30], ``DOCFLOW_RETENTION_FINISHED_DAYS``
    [90], ``DOCFLOW_RETENTION_AUDIT_DAYS`` [2922, eight years],
    ``DOCFLOW_RETENTION_ACCESS_LOG_DAYS`` [2922], and
    ``DOCFLOW_RETENTION_BATCH_SIZE`` [200] finished documents per look-up,
    ``DOCFLOW_RETENTION_WINDOW`` [10000] document ids looked at per batch (the
    due versions of one window are found, purged and reported before the next is
    read, so memory and each look-up stay bounded at any number of documents).
    """

    intermediate: datetime.timedelta
    finished: datetime.timedelta
    audit: datetime.timedelta
    access_log: datetime.timedelta
    batch_size: int
    window: int = 10_000

    @classmethod
    def from_settings(cls) -> RetentionPolicy:
        def days(name: str, default: int) -> datetime.timedelta:
            value = getattr(settings, name, default)
            if value < 0:
                raise ValueError(f"{name} cannot be negative")
            return value * DAY

        return cls(
            intermediate=days("DOCFLOW_RETENTION_INTERMEDIATE_DAYS", 30),
            finished=days("DOCFLOW_RETENTION_FINISHED_DAYS", 90),
            audit=days("DOCFLOW_RETENTION_AUDIT_DAYS", 2922),
            access_log=days("DOCFLOW_RETENTION_ACCESS_LOG_DAYS", 2922),
            batch_size=max(1, getattr(settings, "DOCFLOW_RETENTION_BATCH_SIZE", 200)),
            window=max(1, getattr(settings, "DOCFLOW_RETENTION_WINDOW", 10_000)),
        )


@dataclass
class PurgeReport:
    """What one purge run removed (or, dry, would remove), per data class."""

    purged: Counter = field(default_factory=Counter)
    bytes_purged: int = 0
    documents: int = 0
    skipped_open_work: int = 0
    audit_events_past_retention: int = 0
    access_logs_past_retention: int = 0
    dry_run: bool = False

    def as_audit_data(self, policy: RetentionPolicy) -> dict[str, Any]:
        return {
            "purged": {
                INTERMEDIATE: self.purged[INTERMEDIATE],
                FINISHED: self.purged[FINISHED],
            },
            "bytes_purged": self.bytes_purged,
            "documents": self.documents,
            "skipped_open_work": self.skipped_open_work,
            "kept": {
                "audit_events_past_retention": self.audit_events_past_retention,
                "access_logs_past_retention": self.access_logs_past_retention,
            },
            "policy_days": {
                INTERMEDIATE: policy.intermediate.days,
                FINISHED: policy.finished.days,
                "audit": policy.audit.days,
                "access_log": policy.access_log.days,
            },
            "dry_run": self.dry_run,
        }


def _needs_people() -> Q:
    """Documents a person may still act on (in an attention state, or with an open
    or assigned work item): never purged while this holds."""
    open_work = WorkItem.objects.filter(status__in=ACTIVE_STATUSES).values(
        "document_id"
    )
    return Q(status__in=ATTENTION_STATES) | Q(pk__in=open_work)


def _finished(prefix: str = "") -> Q:
    """Documents in a final state (DESIGN §3), delivered included where final."""
    never_accepting = DestinationProfile.objects.filter(reports_accepted=False).values(
        "endpoint_type"
    )
    return Q(**{f"{prefix}status__in": FINAL_STATES}) | Q(
        **{
            f"{prefix}status": DocumentStatus.DELIVERED,
            f"{prefix}destination__endpoint_type__in": never_accepting,
        }
    )


def _purgeable_versions() -> QuerySet[PayloadVersion]:
    now = timezone.now()
    return PayloadVersion.objects.filter(purged_at__isnull=True).exclude(
        retain_until__gt=now
    )


def _due_intermediate(now: datetime.datetime, policy: RetentionPolicy) -> QuerySet:
    newer = (
        PayloadVersion.objects.filter(document=OuterRef("document"))
        .filter(
            Q(created_at__gt=OuterRef("created_at"))
            | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
        )
        .order_by("created_at", "pk")
        .values("created_at")[:1]
    )
    return (
        _purgeable_versions()
        .annotate(superseded_at=Subquery(newer))
        .filter(superseded_at__lte=now - policy.intermediate)
    )


def _due_finished_documents(
    now: datetime.datetime, policy: RetentionPolicy, ids: range
) -> list[int]:
    cutoff = now - policy.finished
    window = Q(pk__gte=ids.start, pk__lt=ids.stop)
    single = Document.objects.filter(
        window, _finished(), parts__isnull=True, status_changed_at__lte=cutoff
    )
    split_parents = (
        Document.objects.filter(window, parts__isnull=False)
        .annotate(
            unfinished_parts=Count("parts", filter=~_finished("parts__")),
            last_part_finished_at=Max("parts__status_changed_at"),
        )
        .filter(unfinished_parts=0, last_part_finished_at__lte=cutoff)
    )
    return sorted(
        {*single.values_list("pk", flat=True)}
        | {*split_parents.values_list("pk", flat=True)}
    )


def _due_by_document(
    now: datetime.datetime, policy: RetentionPolicy, ids: range
) -> dict[int, dict[int, str]]:
    """{document id: {version id: data class}} for every version due now of the
    documents with ids in ``ids``."""
    due: dict[int, dict[int, str]] = {}
    for version_id, document_id in (
        _due_intermediate(now, policy)
        .filter(document_id__gte=ids.start, document_id__lt=ids.stop)
        .values_list("pk", "document_id")
    ):
        due.setdefault(document_id, {})[version_id] = INTERMEDIATE
    finished_ids = _due_finished_documents(now, policy, ids)
    step = policy.batch_size
    for start in range(0, len(finished_ids), step):
        rows = _purgeable_versions().filter(
            document_id__in=finished_ids[start : start + step]
        )
        for version_id, document_id in rows.values_list("pk", "document_id"):
            due.setdefault(document_id, {}).setdefault(version_id, FINISHED)
    return due


@transaction.atomic
def document_payloads_purge(
    *, document_id: int, versions: dict[int, str], actor: Any = None
) -> dict[str, int] | None:
    """Purge the given due versions of one document, unless a person needs it now.

    Returns the count per data class, or None when the document was kept (it
    needs attention or has an open work item). Blobs go after commit.
    """
    document = Document.objects.select_for_update().get(pk=document_id)
    if Document.objects.filter(pk=document_id).filter(_needs_people()).exists():
        return None
    now = timezone.now()
    locked = list(
        _purgeable_versions()
        .select_for_update()
        .filter(document_id=document_id, pk__in=list(versions))
        .order_by("pk")
    )
    if not locked:
        return {}
    PayloadVersion.objects.filter(pk__in=[v.pk for v in locked]).update(purged_at=now)
    counts = Counter(versions[v.pk] for v in locked)
    audit_record(
        action="document.payloads_purged",
        target_type="document",
        target_id=str(document.public_id),
        data={
            "versions": [
                {
                    "payload_version": str(v.public_id),
                    "stage": v.stage,
                    "data_class": versions[v.pk],
                    "sha256": v.sha256,
                    "size_bytes": v.size_bytes,
                }
                for v in locked
            ],
        },
        actor=actor,
    )
    # Database blobs go in this transaction, files once it has committed.
    payload_blobs_purge([v.storage_name for v in locked])
    return dict(counts) | {"bytes": sum(v.size_bytes for v in locked)}


def payload_purge_due(
    *,
    actor: Any = None,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_window: Callable[[int, int], None] | None = None,
) -> PurgeReport:
    """Purge every payload whose retention ran out: one audit event per document
    purged (``document.payloads_purged``) and one summary per run
    (``payload.retention_purge``; none for a dry run).

    Works through the documents by id in windows of ``policy.window`` ids: each
    window's due versions are found and purged before the next is read.
    ``on_progress(1)`` after each document, ``on_window(ids done, ids in all)``
    after each window.

    Scheduled (django-q2) and run by ``manage.py purge_payloads``. Safe to run
    twice: what is purged is never due again.
    """
    policy = RetentionPolicy.from_settings()
    now = timezone.now()
    report = PurgeReport(dry_run=dry_run)
    report.audit_events_past_retention = AuditEvent.objects.filter(
        occurred_at__lt=now - policy.audit
    ).count()
    report.access_logs_past_retention = AccessLog.objects.filter(
        occurred_at__lt=now - policy.access_log
    ).count()
    bounds = Document.objects.aggregate(low=Min("pk"), high=Max("pk"))
    low, high = bounds["low"] or 0, bounds["high"] or -1
    for start in range(low, high + 1, policy.window):
        ids = range(start, min(start + policy.window, high + 1))
        due = _due_by_document(now, policy, ids)
        if dry_run:
            _count_due(report, due)
        else:
            _purge_due(report, due, actor=actor, on_progress=on_progress)
        if on_window is not None:
            on_window(ids.stop - low, high + 1 - low)
    if not dry_run:
        audit_record(
            action="payload.retention_purge",
            target_type="payload_store",
            target_id="retention",
            data=report.as_audit_data(policy),
            actor=actor,
        )
    return report


def _count_due(report: PurgeReport, due: dict[int, dict[int, str]]) -> None:
    held = set(
        Document.objects.filter(pk__in=list(due))
        .filter(_needs_people())
        .values_list("pk", flat=True)
    )
    for document_id in sorted(due):
        if document_id in held:
            report.skipped_open_work += 1
            continue
        report.documents += 1
        report.purged.update(due[document_id].values())


def _purge_due(
    report: PurgeReport, due: dict[int, dict[int, str]], *, actor, on_progress
) -> None:
    for document_id in sorted(due):
        counts = document_payloads_purge(
            document_id=document_id, versions=due[document_id], actor=actor
        )
        if counts is None:
            report.skipped_open_work += 1
        elif counts:
            report.documents += 1
            report.bytes_purged += counts.pop("bytes", 0)
            report.purged.update(counts)
        if on_progress is not None:
            on_progress(1)
