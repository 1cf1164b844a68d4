"""The queue's counts per bucket, kept in step with the items instead of counted
from them on every page view.

Every save or delete of a work item appends, in its own transaction, a -1 row for
the key it was counted under and a +1 row for the key it is counted under now
(``WorkItemCount``); a key is (bucket, team, sending organisation, due day), so the
counts can be narrowed by the same team and organisation grants as the items, and
an item is overdue when its due day is past (today's items are checked one by one
from the due-date index). Rows are only appended, never updated, so two writers
never wait on one counter; ``work_item_counts_compact`` (scheduled) folds them into
one row per key, so a read sums a few thousand rows whatever the number of items.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from casework.models import (
    ACTIVE_STATUSES,
    WorkItem,
    WorkItemCount,
)

Key = tuple[int | None, int | None, int, datetime.date | None]


def _due_on(due_at: datetime.datetime | None) -> datetime.date | None:
    if due_at is None:
        return None
    return due_at.astimezone(datetime.UTC).date()


def count_key(item: WorkItem) -> Key | None:
    """The key an item adds one to: None when it is not active."""
    if item.status not in ACTIVE_STATUSES:
        return None
    return (
        item.bucket_id,
        item.team_id,
        item.sending_organisation_id,
        _due_on(item.due_at),
    )


def count_key_of_row(pk: int, *, using: str | None = None) -> Key | None:
    """The key of an item as the database holds it (for an instance loaded without
    the counted fields)."""
    row = (
        WorkItem.objects.using(using or "default")
        .filter(pk=pk)
        .values("status", "bucket_id", "team_id", "sending_organisation_id", "due_at")
        .first()
    )
    if row is None:
        return None
    item = WorkItem(
        status=row["status"],
        bucket_id=row["bucket_id"],
        team_id=row["team_id"],
        sending_organisation_id=row["sending_organisation_id"],
        due_at=row["due_at"],
    )
    return count_key(item)


def _row(key: Key, delta: int) -> WorkItemCount:
    bucket_id, team_id, sending_organisation_id, due_on = key
    return WorkItemCount(
        bucket_id=bucket_id,
        team_id=team_id,
        sending_organisation_id=sending_organisation_id,
        due_on=due_on,
        delta=delta,
    )


def work_item_counts_move(*, before: Key | None, after: Key | None) -> None:
    """Move one item from one key to another (None: not counted) in the caller's
    transaction: nothing is written when the key did not change."""
    if before == after:
        return
    rows = []
    if before is not None:
        rows.append(_row(before, -1))
    if after is not None:
        rows.append(_row(after, +1))
    WorkItemCount.objects.bulk_create(rows)


def _fold(rows: list[tuple]) -> list[WorkItemCount]:
    totals: dict[Key, int] = defaultdict(int)
    for bucket_id, team_id, organisation_id, due_on, delta in rows:
        if isinstance(due_on, str):  # SQLite returns dates as text from raw SQL
            due_on = datetime.date.fromisoformat(due_on)
        totals[bucket_id, team_id, organisation_id, due_on] += delta
    return [_row(key, n) for key, n in totals.items() if n]


@transaction.atomic
def work_item_counts_compact() -> int:
    """Fold the appended changes into one row per key (keys summing to zero go);
    safe beside writers and another compaction: only the rows this run deleted are
    folded, and a change committed meanwhile is kept as it is. Returns rows folded."""
    table = connection.ops.quote_name(WorkItemCount._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} "  # noqa: S608 - the table name is our own
            "RETURNING bucket_id, team_id, sending_organisation_id, due_on, delta"
        )
        rows = cursor.fetchall()
    WorkItemCount.objects.bulk_create(_fold(rows), batch_size=1000)
    return len(rows)


@transaction.atomic
def work_item_counts_rebuild() -> int:
    """Recount every active item into fresh rows (after a bulk load, or to repair);
    on PostgreSQL item writes wait until it commits, so none is lost or counted
    twice. Returns the number of keys."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "LOCK TABLE "
                + connection.ops.quote_name(WorkItem._meta.db_table)
                + " IN SHARE MODE"
            )
    WorkItemCount.objects.all().delete()
    totals: dict[Key, int] = defaultdict(int)
    for row in (
        WorkItem.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values("bucket_id", "team_id", "sending_organisation_id", "due_at")
        .iterator(chunk_size=5000)
    ):
        totals[
            row["bucket_id"],
            row["team_id"],
            row["sending_organisation_id"],
            _due_on(row["due_at"]),
        ] += 1
    rows = [_row(key, n) for key, n in totals.items()]
    WorkItemCount.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def work_item_counts_by_bucket(
    *,
    counts: QuerySet[WorkItemCount],
    items: QuerySet[WorkItem],
    now: datetime.datetime | None = None,
) -> dict[int | None, dict[str, int]]:
    """Active and overdue items per bucket id from the counts (already narrowed to
    what the reader may see) and, for items due today, from ``items`` (the same
    narrowing): two statements whatever the number of items."""
    now = now or timezone.now()
    today = now.astimezone(datetime.UTC).date()
    start_of_today = datetime.datetime.combine(today, datetime.time(), datetime.UTC)
    by_bucket: dict[int | None, dict[str, int]] = {}
    for row in (
        counts.order_by()
        .values("bucket_id")
        .annotate(
            active=Sum("delta"),
            overdue=Sum("delta", filter=Q(due_on__lt=today)),
        )
    ):
        if row["active"]:
            by_bucket[row["bucket_id"]] = {
                "active": row["active"],
                "overdue": row["overdue"] or 0,
            }
    for row in (
        items.filter(
            status__in=ACTIVE_STATUSES, due_at__gte=start_of_today, due_at__lt=now
        )
        .order_by()
        .values("bucket_id")
        .annotate(n=Count("*"))
    ):
        counted = by_bucket.setdefault(row["bucket_id"], {"active": 0, "overdue": 0})
        counted["overdue"] += row["n"]
    return by_bucket
