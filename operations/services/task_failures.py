"""Failing background tasks: a django-q task that timed out, or a task function that
keeps failing, raises one incident per function instead of failing unseen.

What django-q2 records (``django_q.worker`` and ``django_q.monitor.save_task``): a
task that raises, or that runs past its timeout (``Q_CLUSTER["timeout"]``; the
worker's SIGALRM handler raises ``TimeoutException``), is saved as a ``Task`` row
with ``success=False`` (``django_q.models.Failure``), ``func`` its dotted name,
``stopped`` when it ended and ``result`` the text ``"<exception> : <traceback>"``;
a timeout's text starts with ``"Task exceeded maximum timeout value"`` and the
worker that ran it is replaced. ``save_limit`` (``Q_SAVE_LIMIT``, -1 here) only
limits or skips *successful* rows: failures are always saved. A worker that is
killed (by the cluster's guard, or SIGKILL) before the task ends writes no row:
such a task is seen by what it leaves undone (the watchdog's stuck documents).

Each watch reads the failures that ended since its last look (a cursor kept in the
``task_failures`` snapshot, read again with an overlap for rows a monitor saved
late) to find the timeouts, whose task ids it keeps for the window. It counts every
function's failures over ``DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS`` in the
database. A function with a timeout in the window, or with at least
``DOCFLOW_OPS_TASK_FAILURE_THRESHOLD`` failures in it, raises (or joins) the
incident ``task:<function>``; the incident resolves once the window holds no
failure of that function. Incidents carry the function, counts, the first and last
failure times and task ids: never a task's arguments or result.

Failed task rows are kept ``DOCFLOW_OPS_TASK_FAILURE_KEEP_DAYS`` (their result holds
a traceback, which may quote data) and then pruned by ``task_failures_prune``; the
watch's reads go through a partial index on ``stopped`` (operations migration 0007).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_q.models import Failure

from operations.models import IncidentKind, IncidentSeverity, Snapshot
from operations.services.incidents import incident_raise, incidents_resolve_cleared
from operations.services.snapshots import snapshot_save

# How django_q.timeout.TimeoutHandler words the exception a timed-out task raises.
TIMEOUT_RESULT_PREFIX = "Task exceeded maximum timeout value"
SNAPSHOT_KEY = "task_failures"
# Failures saved this late after they ended are still found by the next look.
CURSOR_OVERLAP = timedelta(minutes=2)
# Task ids named in an incident (the newest): enough to find them in the admin.
TASK_IDS_SHOWN = 10
SCOPE_PREFIX = "task:"


@dataclass
class FailingFunction:
    func: str
    failures: int
    first_failed_at: datetime
    last_failed_at: datetime
    timed_out: dict[str, str] = field(default_factory=dict)  # task id -> stopped

    @property
    def scope(self) -> str:
        return f"{SCOPE_PREFIX}{self.func}"[:200]

    @property
    def timeouts(self) -> int:
        return len(self.timed_out)


def _is_timeout(result) -> bool:
    return isinstance(result, str) and result.startswith(TIMEOUT_RESULT_PREFIX)


def task_timeouts_collect(*, now: datetime | None = None) -> dict[str, dict[str, str]]:
    """The timeouts in the window, per function (task id -> when it stopped): those
    the last look kept, plus those among failures saved since; the cursor moves on."""
    now = now or timezone.now()
    window_start = now - timedelta(
        seconds=settings.DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS
    )
    snapshot = Snapshot.objects.filter(key=SNAPSHOT_KEY).first()
    kept = snapshot.data if snapshot is not None else {}
    cursor = parse_datetime(kept["cursor"]) if kept.get("cursor") else None
    read_from = window_start
    if cursor is not None:
        read_from = max(window_start, cursor - CURSOR_OVERLAP)
    timeouts: dict[str, dict[str, str]] = {}
    for func, tasks in kept.get("timeouts", {}).items():
        within = {
            task_id: stopped
            for task_id, stopped in tasks.items()
            if parse_datetime(stopped) >= window_start
        }
        if within:
            timeouts[func] = within
    newest = cursor
    recent = (
        Failure.objects.filter(stopped__gte=read_from, stopped__lte=now)
        .only("id", "func", "stopped", "result")
        .order_by("stopped")
    )
    for failure in recent.iterator(chunk_size=500):
        newest = failure.stopped if newest is None else max(newest, failure.stopped)
        if _is_timeout(failure.result):
            timeouts.setdefault(failure.func, {})[failure.id] = (
                failure.stopped.isoformat()
            )
    snapshot_save(
        key=SNAPSHOT_KEY,
        data={
            "cursor": newest.isoformat() if newest is not None else None,
            "timeouts": timeouts,
        },
        now=now,
    )
    return timeouts


def failing_functions_find(*, now: datetime | None = None) -> list[FailingFunction]:
    """Every task function with a failure in the window: counts, first and last
    failure, and its timeouts."""
    now = now or timezone.now()
    window_start = now - timedelta(
        seconds=settings.DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS
    )
    timeouts = task_timeouts_collect(now=now)
    rows = (
        Failure.objects.filter(stopped__gte=window_start, stopped__lte=now)
        .order_by()
        .values("func")
        .annotate(n=Count("id"), first=Min("stopped"), last=Max("stopped"))
    )
    return [
        FailingFunction(
            func=row["func"],
            failures=row["n"],
            first_failed_at=row["first"],
            last_failed_at=row["last"],
            timed_out=timeouts.get(row["func"], {}),
        )
        for row in rows
    ]


def _summary(failing: FailingFunction, window: int) -> str:
    if failing.timeouts:
        return (
            f"Task {failing.func} timed out {failing.timeouts} time(s) in the last "
            f"{window} s ({failing.failures} failure(s) in all)"
        )
    return (
        f"Task {failing.func} failed {failing.failures} time(s) in the last {window} s"
    )


def task_failures_watch(*, now: datetime | None = None) -> list[FailingFunction]:
    """Raise or join one incident per task function that timed out or failed
    ``DOCFLOW_OPS_TASK_FAILURE_THRESHOLD`` times in the window; resolve those whose
    window holds no failure any more."""
    now = now or timezone.now()
    window = settings.DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS
    threshold = settings.DOCFLOW_OPS_TASK_FAILURE_THRESHOLD
    failing = failing_functions_find(now=now)
    raised = []
    for item in failing:
        if not item.timeouts and item.failures < threshold:
            continue  # below the threshold: an open incident stays, a new one waits
        task_ids = list(
            Failure.objects.filter(
                func=item.func, stopped__gte=now - timedelta(seconds=window)
            )
            .order_by("-stopped")
            .values_list("id", flat=True)[:TASK_IDS_SHOWN]
        )
        timed_out = sorted(item.timed_out, key=item.timed_out.get, reverse=True)
        incident_raise(
            kind=IncidentKind.TASK_FAILURES,
            scope=item.scope,
            severity=IncidentSeverity.MAJOR,
            summary=_summary(item, window),
            details={
                "function": item.func,
                "failures": item.failures,
                "timeouts": item.timeouts,
                "window_seconds": window,
                "threshold": threshold,
                "first_failed_at": item.first_failed_at.isoformat(),
                "last_failed_at": item.last_failed_at.isoformat(),
                "task_ids": task_ids,
                "timed_out_task_ids": timed_out[:TASK_IDS_SHOWN],
            },
        )
        raised.append(item)
    incidents_resolve_cleared(
        kind=IncidentKind.TASK_FAILURES,
        active_scopes={item.scope for item in failing},
        resolution="No failure of this task in the window any more.",
        scope_prefix=SCOPE_PREFIX,
    )
    return raised


def task_failures_prune(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Delete failed task rows that stopped more than
    ``DOCFLOW_OPS_TASK_FAILURE_KEEP_DAYS`` ago, a batch at a time; returns how many."""
    now = now or timezone.now()
    before = now - timedelta(days=settings.DOCFLOW_OPS_TASK_FAILURE_KEEP_DAYS)
    deleted = 0
    while True:
        ids = list(
            Failure.objects.filter(stopped__lt=before)
            .order_by()
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            return deleted
        Failure.objects.filter(id__in=ids).delete()
        deleted += len(ids)
