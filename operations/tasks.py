"""django-q2 entry points for operations: thin, idempotent, safe to run twice."""

from __future__ import annotations

from operations.services import (
    feeds,
    health,
    rollup,
    snapshots,
    surges,
    task_failures,
    watchdog,
)
from operations.services.notifications import notification_deliver as _deliver


def notification_deliver(notification_id: int) -> str:
    """Send one incident alert (no-op if it was already sent)."""
    delivered = _deliver(notification_id=notification_id)
    return "sent" if delivered is not None else "already delivered"


def watch() -> str:
    """The operations watch: stuck documents, surges, halts, destinations, failing
    tasks and changes feeds, and the snapshot of documents by state the dashboard
    and /metrics read."""
    snapshots.documents_by_state_snapshot_take()
    stuck = watchdog.watchdog_run()
    surges.system_error_surge_check()
    rejection = surges.rejection_surges_check()
    halts = surges.outbound_halts_watch()
    destinations = health.destinations_watch()
    failing = task_failures.task_failures_watch()
    feeds_failing = feeds.changes_feeds_watch()
    return (
        f"stuck={stuck['stuck']} rejection_surges={len(rejection)} "
        f"halts={len(halts)} unacknowledged={len(destinations['unacknowledged'])} "
        f"refusing={len(destinations['refusing'])} failing_tasks={len(failing)} "
        f"failing_feeds={len(feeds_failing)}"
    )


def prune_task_failures() -> int:
    """Delete failed task rows past their keeping period."""
    return task_failures.task_failures_prune()


def roll_up_hourly_counts() -> int:
    """Recount the recent hours for the dashboard."""
    return rollup.hourly_counts_roll_up_recent()
