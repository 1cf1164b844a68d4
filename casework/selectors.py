"""Work item reads, filtered by what the user may see (teams and sending
organisations granted, a role that views items)."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from casework import access
from casework.errors import DocumentStateError
from casework.models import (
    ACTIVE_STATUSES,
    ENDED_STATUSES,
    Team,
    WorkItem,
    WorkItemBucket,
    WorkItemResolution,
    WorkItemStatus,
)
from casework.resolution_plans import plan_for
from docflow.models import Document

# Status filter values beyond the item statuses themselves.
ACTIVE = "active"
ENDED = "ended"
ALL = "all"


@dataclass(frozen=True)
class WorkItemFilters:
    """Narrowing of a work queue; ``after`` is the keyset cursor (opened_at, id)."""

    status: str = ACTIVE
    bucket: str | None = None
    category: str | None = None
    team_id: int | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    reason_code: str | None = None
    sending_organisation_id: int | None = None
    destination_ods_code: str | None = None
    opened_before: datetime.datetime | None = None
    overdue_at: datetime.datetime | None = None
    after: tuple[datetime.datetime, int] | None = None


@dataclass(frozen=True)
class BucketCount:
    key: str | None
    name: str
    active: int
    overdue: int


def _filtered(
    queryset: QuerySet[WorkItem], filters: WorkItemFilters
) -> QuerySet[WorkItem]:
    if filters.status == ACTIVE:
        queryset = queryset.filter(status__in=ACTIVE_STATUSES)
    elif filters.status == ENDED:
        queryset = queryset.filter(status__in=ENDED_STATUSES)
    elif filters.status != ALL:
        queryset = queryset.filter(status=filters.status)
    if filters.bucket:
        queryset = queryset.filter(bucket__key=filters.bucket)
    if filters.category:
        queryset = queryset.filter(category=filters.category)
    if filters.team_id is not None:
        queryset = queryset.filter(team_id=filters.team_id)
    if filters.assignee_id is not None:
        queryset = queryset.filter(assignee_id=filters.assignee_id)
    if filters.unassigned:
        queryset = queryset.filter(assignee__isnull=True)
    if filters.reason_code:
        queryset = queryset.filter(reason_code=filters.reason_code)
    if filters.sending_organisation_id is not None:
        queryset = queryset.filter(
            document__sending_organisation_id=filters.sending_organisation_id
        )
    if filters.destination_ods_code:
        queryset = queryset.filter(
            document__destination_ods_code=filters.destination_ods_code
        )
    if filters.opened_before is not None:
        queryset = queryset.filter(opened_at__lt=filters.opened_before)
    if filters.overdue_at is not None:
        queryset = queryset.filter(due_at__lt=filters.overdue_at)
    return queryset


def work_items_for(
    *, user: Any, filters: WorkItemFilters | None = None
) -> QuerySet[WorkItem]:
    """Visible items, oldest first, keyset-paginated on (opened_at, id)."""
    # Pass the last row's (opened_at, id) as ``filters.after`` for the next page.
    filters = filters or WorkItemFilters()
    queryset = _filtered(access.work_items_visible_to(user=user), filters)
    if filters.after is not None:
        opened_at, last_id = filters.after
        queryset = queryset.filter(
            Q(opened_at__gt=opened_at) | Q(opened_at=opened_at, id__gt=last_id)
        )
    return queryset.select_related(
        "document", "document__sending_organisation", "bucket", "team", "assignee"
    ).order_by("opened_at", "id")


def work_item_bucket_counts(
    *, user: Any, filters: WorkItemFilters | None = None
) -> list[BucketCount]:
    """Active and overdue visible items per bucket, every bucket listed."""
    # Zeros included, in bucket order; unclassified items last if there are any.
    filters = filters or WorkItemFilters()
    now = timezone.now()
    rows = (
        _filtered(
            access.work_items_visible_to(user=user),
            dataclasses.replace(filters, bucket=None, after=None),
        )
        .values("bucket_id")
        .annotate(
            active=Count("id"),
            overdue=Count("id", filter=Q(due_at__lt=now)),
        )
    )
    by_bucket = {row["bucket_id"]: row for row in rows}
    counts = [
        BucketCount(
            key=bucket.key,
            name=bucket.name,
            active=by_bucket.get(bucket.pk, {}).get("active", 0),
            overdue=by_bucket.get(bucket.pk, {}).get("overdue", 0),
        )
        for bucket in WorkItemBucket.objects.order_by("position", "key")
    ]
    if None in by_bucket:
        row = by_bucket[None]
        counts.append(
            BucketCount(
                key=None,
                name="Unclassified",
                active=row["active"],
                overdue=row["overdue"],
            )
        )
    return counts


def work_item_get(*, user: Any, public_id: uuid.UUID) -> WorkItem:
    """One visible item; DoesNotExist alike when missing or not visible."""
    return (
        access.work_items_visible_to(user=user)
        .select_related(
            "document",
            "document__sending_organisation",
            "document__destination",
            "bucket",
            "team",
            "assignee",
            "closed_by",
        )
        .get(public_id=public_id)
    )


def work_item_history(*, user: Any, work_item: WorkItem) -> QuerySet:
    """Every recorded change of a visible item, newest first, with who and why."""
    if not access.can_see(user=user, work_item=work_item):
        return WorkItem.history.none()
    return (
        WorkItem.history.filter(id=work_item.pk)
        .select_related("history_user", "assignee")
        .order_by("-history_date", "-history_id")
    )


def work_item_actions(*, user: Any, work_item: WorkItem) -> frozenset[str]:
    """What the user may do to the item now, by role, grants and states."""
    # Resolutions by value, plus assign, take, unassign and reopen. One offered here
    # can still be refused by what only its service checks (content, destination).
    if not access.can_see(user=user, work_item=work_item):
        return frozenset()
    actions: set[str] = set()
    document = Document.objects.get(pk=work_item.document_id)
    if work_item.is_active:
        role = {
            WorkItemResolution.RESEND: access.RESEND,
            WorkItemResolution.REROUTE: access.DECIDE,
            WorkItemResolution.CORRECTED_VERSION: access.DECIDE,
            WorkItemResolution.OTHER_ROUTE: access.DECIDE,
            WorkItemResolution.NO_FURTHER_ACTION: access.DECIDE,
            WorkItemResolution.DOCUMENT_CANCELLED: access.DECIDE,
        }
        for resolution, permission in role.items():
            if not user.has_perm(permission):
                continue
            try:
                plan_for(resolution, document)
            except DocumentStateError:
                continue
            actions.add(str(resolution))
        if user.has_perm(access.ASSIGN):
            actions.add("assign")
        if work_item.assignee_id != user.pk and access.can_work(
            user=user, work_item=work_item
        ):
            actions.add("take")
        if work_item.status == WorkItemStatus.ASSIGNED and (
            user.has_perm(access.ASSIGN) or work_item.assignee_id == user.pk
        ):
            actions.add("unassign")
    elif user.has_perm(access.REOPEN):
        actions.add("reopen")
    return frozenset(actions)


def work_item_assignees(*, work_item: WorkItem) -> list[Any]:
    """People who may be given the item: working role, team and organisation."""
    users = get_user_model().objects.filter(is_active=True).order_by("username")
    return [user for user in users if access.can_work(user=user, work_item=work_item)]


def work_item_assignee_candidates(*, user: Any) -> list[Any]:
    """People a user with assign may pick for many items: active, in a working role."""
    # Each item's grants are checked again by work_item_assign, item by item.
    if not user.has_perm(access.ASSIGN):
        return []
    # One query (role permissions by group or by user), whatever the staff count.
    working = Permission.objects.filter(
        content_type__app_label="casework",
        codename__in=[name.split(".", 1)[1] for name in access.WORKING],
    )
    return list(
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__permissions__in=working)
            | Q(user_permissions__in=working)
        )
        .distinct()
        .order_by("username")
    )


def teams_for(*, user: Any) -> QuerySet[Team]:
    """The active teams whose items the user may see."""
    ids = access.visible_team_ids(user=user)
    queryset = Team.objects.filter(is_active=True)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return queryset


def work_items_open_for(*, document: Document) -> QuerySet[WorkItem]:
    """Open (or assigned) work items of one document: at most one, by constraint."""
    return WorkItem.objects.filter(document=document, status__in=ACTIVE_STATUSES)
