"""The operations watch, as one use case: the scheduled task runs it every minute,
rehearsals run it at a time of their choosing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from docflow import leases
from operations.counting import document_counts_fold
from operations.services import (
    feeds,
    health,
    snapshots,
    surges,
    task_failures,
    watchdog,
)

# One watch at a time on any node: a run that outlives its minute makes the next
# one skip rather than overlap (its heartbeat renews the lease while it runs); a
# worker that died mid-run frees it within DOCFLOW_LEASE_SECONDS.
WATCH_LEASE = "operations.watch"


@dataclass(frozen=True)
class WatchReport:
    stuck: int
    rejection_surges: int
    halts: int
    unacknowledged: int
    refusing: int
    failing_tasks: int
    failing_feeds: int
    skipped: bool = False

    def __str__(self) -> str:
        if self.skipped:
            return "skipped: another watch run holds the lease"
        return (
            f"stuck={self.stuck} rejection_surges={self.rejection_surges} "
            f"halts={self.halts} unacknowledged={self.unacknowledged} "
            f"refusing={self.refusing} failing_tasks={self.failing_tasks} "
            f"failing_feeds={self.failing_feeds}"
        )


def operations_watch_run(*, now: datetime | None = None) -> WatchReport:
    """Stuck documents, surges, halts, destinations, failing tasks and changes
    feeds, as of ``now``, and the snapshot of documents by state the dashboard and
    /metrics read."""
    # Skipped (nothing read or written) while another run holds the lease.
    with leases.lease_held(name=WATCH_LEASE) as lease:
        if not lease:
            return WatchReport(0, 0, 0, 0, 0, 0, 0, skipped=True)
        return _watch(now=now or timezone.now())


def _watch(*, now: datetime) -> WatchReport:
    # Under the lease: the only folder of the kept document counts.
    document_counts_fold()
    snapshots.documents_by_state_snapshot_take()
    stuck = watchdog.watchdog_run(now=now)
    surges.system_error_surge_check(now=now)
    rejection = surges.rejection_surges_check(now=now)
    halts = surges.outbound_halts_watch()
    destinations = health.destinations_watch(now=now)
    failing = task_failures.task_failures_watch(now=now)
    feeds_failing = feeds.changes_feeds_watch(now=now)
    return WatchReport(
        stuck=stuck["stuck"],
        rejection_surges=len(rejection),
        halts=len(halts),
        unacknowledged=len(destinations["unacknowledged"]),
        refusing=len(destinations["refusing"]),
        failing_tasks=len(failing),
        failing_feeds=len(feeds_failing),
    )
