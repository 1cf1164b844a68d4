"""The work queue's orders, and keyset paging that works for each of them.

An order is a list of parts read one after another, each part read in the order of
an index (for instance urgent and overdue items by opened time, then urgent items not
yet overdue, ...). A page is one statement: the parts still to come, each limited to
a page and read from the keyset position onwards, joined with UNION ALL under one
LIMIT, so PostgreSQL stops reading as soon as the page is full and never sorts the
whole queue. "Overdue" is decided at the time the first page was read (``as_of``,
carried in the position), so an item falling due between pages is neither shown
twice nor skipped.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.tuple_lookups import (
    Tuple,
    TupleGreaterThan,
    TupleLessThan,
)

from casework.models import WorkItem

PRIORITY = "priority"
OLDEST = "oldest"
NEWEST = "newest"
DUE = "due"

SORT_CHOICES = [
    (PRIORITY, "Urgent first, then overdue, then oldest"),
    (OLDEST, "Oldest first"),
    (NEWEST, "Newest first"),
    (DUE, "Due soonest"),
]
SORT_CAPTIONS = {
    PRIORITY: "urgent first, then overdue, then oldest",
    OLDEST: "oldest first",
    NEWEST: "newest first",
    DUE: "due soonest first",
}


@dataclass(frozen=True)
class Part:
    """One run of an order: which rows (at a time), and the fields it is read by
    (then the id), all ascending or all descending."""

    rows: Callable[[datetime.datetime], Q]
    holds: Callable[[WorkItem, datetime.datetime], bool]
    fields: tuple[str, ...]
    descending: bool = False


def _overdue(as_of: datetime.datetime) -> Q:
    return Q(due_at__lt=as_of)


def _not_overdue(as_of: datetime.datetime) -> Q:
    return Q(due_at__gte=as_of) | Q(due_at__isnull=True)


def _is_overdue(item: WorkItem, as_of: datetime.datetime) -> bool:
    return item.due_at is not None and item.due_at < as_of


def _everything(as_of: datetime.datetime) -> Q:
    return Q()


ORDERS: dict[str, tuple[Part, ...]] = {
    # Index work_item_active_priority (urgent, opened_at, id) serves all four parts.
    PRIORITY: (
        Part(
            lambda at: Q(urgent=True) & _overdue(at),
            lambda item, at: item.urgent and _is_overdue(item, at),
            ("opened_at",),
        ),
        Part(
            lambda at: Q(urgent=True) & _not_overdue(at),
            lambda item, at: item.urgent and not _is_overdue(item, at),
            ("opened_at",),
        ),
        Part(
            lambda at: Q(urgent=False) & _overdue(at),
            lambda item, at: not item.urgent and _is_overdue(item, at),
            ("opened_at",),
        ),
        Part(
            lambda at: Q(urgent=False) & _not_overdue(at),
            lambda item, at: not item.urgent and not _is_overdue(item, at),
            ("opened_at",),
        ),
    ),
    # Index work_item_active_queue (opened_at, id), either way round.
    OLDEST: (Part(_everything, lambda item, at: True, ("opened_at",)),),
    NEWEST: (
        Part(_everything, lambda item, at: True, ("opened_at",), descending=True),
    ),
    # Index work_item_active_due (due_at, id); items with no due date last, oldest
    # first.
    DUE: (
        Part(
            lambda at: Q(due_at__isnull=False),
            lambda item, at: item.due_at is not None,
            ("due_at",),
        ),
        Part(
            lambda at: Q(due_at__isnull=True),
            lambda item, at: item.due_at is None,
            ("opened_at",),
        ),
    ),
}


@dataclass(frozen=True)
class QueuePosition:
    """Where the next page of one order starts: after the row with these field
    values and id, in this part, with overdue decided at ``as_of``."""

    sort: str
    as_of: datetime.datetime
    part: int
    values: tuple[datetime.datetime, ...]
    pk: int

    def is_valid(self) -> bool:
        parts = ORDERS.get(self.sort)
        return (
            parts is not None
            and 0 <= self.part < len(parts)
            and len(self.values) == len(parts[self.part].fields)
        )


def _part_of(sort: str, item: WorkItem, as_of: datetime.datetime) -> int:
    for index, part in enumerate(ORDERS[sort]):
        if part.holds(item, as_of):
            return index
    raise ValueError(f"no part of {sort} holds item {item.pk}")


def queue_position_after(
    *, sort: str, item: WorkItem, as_of: datetime.datetime
) -> QueuePosition:
    """The position just after one row of a page."""
    index = _part_of(sort, item, as_of)
    part = ORDERS[sort][index]
    values = tuple(getattr(item, name) for name in part.fields)
    return QueuePosition(sort=sort, as_of=as_of, part=index, values=values, pk=item.pk)


def _part_queryset(
    queryset: QuerySet, part: Part, as_of: datetime.datetime, after
) -> QuerySet:
    queryset = queryset.filter(part.rows(as_of))
    if after is not None:
        key = Tuple(*[F(name) for name in part.fields], F("id"))
        bound = (*after.values, after.pk)
        beyond = TupleLessThan if part.descending else TupleGreaterThan
        queryset = queryset.filter(beyond(key, bound))
    sign = "-" if part.descending else ""
    return queryset.order_by(*[f"{sign}{name}" for name in (*part.fields, "id")])


def _sorted(rows: list[WorkItem], sort: str, as_of: datetime.datetime) -> list:
    parts = ORDERS[sort]
    by_part: dict[int, list[WorkItem]] = {}
    for row in rows:
        by_part.setdefault(_part_of(sort, row, as_of), []).append(row)
    ordered = []
    for index in sorted(by_part):
        part = parts[index]
        ordered += sorted(
            by_part[index],
            key=lambda row, part=part: (
                *[getattr(row, f) for f in part.fields],
                row.pk,
            ),
            reverse=part.descending,
        )
    return ordered


def queue_rows(
    queryset: QuerySet,
    *,
    sort: str,
    as_of: datetime.datetime,
    after: QueuePosition | None,
    limit: int,
    related: tuple[str, ...] = (),
) -> list[WorkItem]:
    """Up to ``limit`` rows of ``queryset`` in the order, from the position on; one
    statement whatever the order, the position or the data."""
    parts = ORDERS[sort]
    start = 0
    if after is not None:
        start, as_of = after.part, after.as_of
    chosen = [
        _part_queryset(queryset, parts[index], as_of, after if index == start else None)
        for index in range(start, len(parts))
    ]
    if len(chosen) == 1:
        return list(chosen[0].select_related(*related)[:limit])
    # The parts' ids, part after part, under one LIMIT: each part is read in its
    # index's order and PostgreSQL's Append stops once the page is full. (Django
    # cannot express a UNION of LIMITed parts on SQLite, hence the derived tables.)
    # Django's own compiled SQL, its parameters kept apart: nothing from the
    # request is spliced into the statement.
    statements, params = [], []
    for number, part_queryset in enumerate(chosen):
        query = part_queryset.values_list("pk")[:limit].query
        try:
            sql, part_params = query.sql_with_params()
        except EmptyResultSet:  # nothing visible (no role, no grant)
            continue
        name = f"part{number}"
        statements.append(f"SELECT {name}.pk FROM ({sql}) AS {name}")  # noqa: S608
        params += part_params
    if not statements:
        return []
    union = f"{' UNION ALL '.join(statements)} LIMIT {int(limit)}"
    ids = RawSQL(union, params)  # noqa: S611
    rows = list(WorkItem.objects.filter(pk__in=ids).select_related(*related))
    return _sorted(rows, sort, as_of)
