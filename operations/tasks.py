"""django-q2 entry points for operations: thin, idempotent, safe to run twice."""

from __future__ import annotations

from docflow.leases import singleton
from operations.services import rollup, task_failures
from operations.services.notifications import notification_deliver as _deliver
from operations.services.watch import operations_watch_run


def notification_deliver(notification_id: int) -> str:
    """Send one incident alert (no-op if it was already sent)."""
    delivered = _deliver(notification_id=notification_id)
    return "sent" if delivered is not None else "already delivered"


def watch() -> str:
    """The operations watch (see ``services.watch``), reported in one line."""
    return str(operations_watch_run())


def prune_task_failures() -> int:
    """Delete failed task rows past their keeping period."""
    return task_failures.task_failures_prune()


@singleton("operations.roll_up_hourly_counts")
def roll_up_hourly_counts() -> int:
    """Recount the recent hours for the dashboard."""
    return rollup.hourly_counts_roll_up_recent()
