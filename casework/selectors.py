"""Work item reads, filtered by what the user may see (teams and sending
organisations granted, a role that views items).

Every page's reads take a fixed number of statements whatever the data and the
number of staff: lists are bounded, related rows are read with them, and the
queue's counts and pages read active items by index without touching documents.

Over 500 lines because the queue and the item page read through the same private
visibility rules (``_viewer``, ``_visible``, ``_filtered``), which stay in one module.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, F, Q, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission

from audit.selectors import audit_events_for_target
from casework import access
from casework.counting import work_item_counts_by_bucket
from casework.errors import DocumentStateError
from casework.models import (
    ACTIVE_STATUSES,
    ENDED_STATUSES,
    Team,
    WorkItem,
    WorkItemBucket,
    WorkItemCount,
    WorkItemResolution,
    WorkItemStatus,
)
from casework.queue_order import (
    PRIORITY,
    QueuePosition,
    queue_position_after,
    queue_rows,
)
from casework.resolution_plans import plan_for
from docflow.corrections import (
    CorrectionRefused,
    destination_for_sending,
    document_payload_fit_check,
)
from docflow.models import (
    Document,
    DocumentStatus,
    Organisation,
    OrganisationStatus,
    SendingOrganisation,
)
from docflow.selectors import (
    ACCESS_DOCUMENTS,
    document_timeline,
)

# Status filter values beyond the item statuses themselves.
ACTIVE = "active"
ENDED = "ended"
ALL = "all"

# Rows the item page shows of each list (timeline, events, transmissions, history):
# the newest ones, so a long-lived document costs the page no more than a new one.
ITEM_PAGE_ROWS = 50


@dataclass(frozen=True)
class WorkItemFilters:
    """Narrowing of a work queue. ``bucket`` is one bucket, ``buckets`` any of
    several; ``after`` is the oldest-first keyset cursor (opened_at, id) of
    ``work_items_for`` (``work_queue_page`` takes a ``QueuePosition`` instead)."""

    status: str = ACTIVE
    bucket: str | None = None
    buckets: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class WorkQueuePage:
    """Up to a page of items in queue order, whether more follow, where the next
    page starts, and the counts."""

    items: list[WorkItem]
    more: bool
    counts: list[BucketCount]
    next_position: QueuePosition | None = None


@dataclass(frozen=True)
class Rows:
    """At most ``ITEM_PAGE_ROWS`` rows of a list, oldest or newest first as asked,
    and whether older rows were left out."""

    rows: list[Any]
    more: bool = False

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class WorkItemPage:
    """A visible work item (its document read with it) and what its page lists."""

    item: WorkItem
    actions: frozenset[str]
    # Actions the role allows but that cannot succeed now, with why (shown instead).
    unavailable: dict[str, str]
    assignees: list[Any]
    document_events: Rows
    item_events: Rows
    transmissions: Rows
    history: Rows


def _viewer(user: Any) -> bool:
    return (
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and user.has_perm(access.VIEW)
    )


def _visible(*, user: Any) -> QuerySet[WorkItem]:
    """The items the user may see (``access.work_items_visible_to``): filtered on the
    item's own copy of its sending organisation, so counting never joins documents."""
    return access.work_items_visible_to(user=user)


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
    if filters.buckets:
        queryset = queryset.filter(bucket__key__in=filters.buckets)
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
            sending_organisation_id=filters.sending_organisation_id
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


def _queue(visible: QuerySet[WorkItem], filters: WorkItemFilters) -> QuerySet:
    queryset = _filtered(visible, filters)
    if filters.after is not None:
        # A row comparison, (opened_at, id) > (t, n): PostgreSQL starts the index
        # scan at the cursor, so page 1,000 reads no more entries than page 1.
        # (Django's own lookup for composite keys; SQLite gets the OR form.)
        queryset = queryset.filter(
            TupleGreaterThan(Tuple(F("opened_at"), F("id")), filters.after)
        )
    return queryset.select_related("document", "bucket", "team", "assignee").order_by(
        "opened_at", "id"
    )


def _counts(
    seen: access.Visibility,
    filters: WorkItemFilters,
    buckets: list[WorkItemBucket] | None = None,
    *,
    visible: QuerySet[WorkItem] | None = None,
) -> list[BucketCount]:
    # Unfiltered (the queue as it opens, or one bucket of it): the kept counts
    # (casework.counting), a few thousand rows summed whatever the number of items.
    # Narrowed by other filters: exact counts from one index-only scan of the
    # partial index work_item_active_counts (only the destination filter reads
    # documents).
    now = timezone.now()
    if visible is None:
        visible = seen.narrow(WorkItem.objects.all())
    unbucketed = dataclasses.replace(filters, bucket=None, buckets=(), after=None)
    if unbucketed == WorkItemFilters():
        by_bucket = work_item_counts_by_bucket(
            counts=seen.narrow(WorkItemCount.objects.all()), items=visible, now=now
        )
    else:
        by_bucket = {
            row["bucket_id"]: row
            for row in (
                _filtered(visible, unbucketed)
                .order_by()
                .values("bucket_id")
                .annotate(
                    active=Count("*"),
                    overdue=Count("due_at", filter=Q(due_at__lt=now)),
                )
            )
        }
    if buckets is None:
        buckets = work_item_buckets()
    counts = [
        BucketCount(
            key=bucket.key,
            name=bucket.name,
            active=by_bucket.get(bucket.pk, {}).get("active", 0),
            overdue=by_bucket.get(bucket.pk, {}).get("overdue", 0),
        )
        for bucket in buckets
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


def work_items_for(
    *, user: Any, filters: WorkItemFilters | None = None
) -> QuerySet[WorkItem]:
    """Visible items, oldest first, keyset-paginated on (opened_at, id)."""
    # Pass the last row's (opened_at, id) as ``filters.after`` for the next page.
    return _queue(_visible(user=user), filters or WorkItemFilters())


def work_item_bucket_counts(
    *, user: Any, filters: WorkItemFilters | None = None
) -> list[BucketCount]:
    """Active and overdue visible items per bucket, every bucket listed."""
    # Zeros included, in bucket order; unclassified items last if there are any.
    return _counts(access.visibility(user=user), filters or WorkItemFilters())


def work_item_buckets() -> list[WorkItemBucket]:
    """Every bucket, in the order the queue lists them."""
    return list(WorkItemBucket.objects.order_by("position", "key"))


QUEUE_RELATED = ("document", "bucket", "team", "assignee")


def work_queue_page(
    *,
    user: Any,
    filters: WorkItemFilters,
    size: int,
    sort: str = PRIORITY,
    after: QueuePosition | None = None,
    buckets: list[WorkItemBucket] | None = None,
    now: datetime.datetime | None = None,
) -> WorkQueuePage:
    """One page of visible items in the chosen order and the counts per bucket,
    visibility read once; the same statements for every order and page."""
    # ``after`` of another order is ignored (the first page of this one); the
    # buckets, when the caller has read them already, are not read again.
    seen = access.visibility(user=user)
    visible = seen.narrow(WorkItem.objects.all())
    if after is not None and (after.sort != sort or not after.is_valid()):
        after = None
    as_of = now or timezone.now()
    rows = queue_rows(
        _filtered(visible, dataclasses.replace(filters, after=None)),
        sort=sort,
        as_of=as_of,
        after=after,
        limit=size + 1,
        related=QUEUE_RELATED,
    )
    items, more = rows[:size], len(rows) > size
    next_position = None
    if more:
        next_position = queue_position_after(
            sort=sort, item=items[-1], as_of=after.as_of if after else as_of
        )
    return WorkQueuePage(
        items=items,
        more=more,
        counts=_counts(seen, filters, buckets, visible=visible),
        next_position=next_position,
    )


def work_items_visible(*, user: Any, public_ids: list[uuid.UUID]) -> QuerySet[WorkItem]:
    """Those of these items the user may see (the others are left out)."""
    return _visible(user=user).filter(public_id__in=public_ids)


def work_item_get(*, user: Any, public_id: uuid.UUID) -> WorkItem:
    """One visible item; DoesNotExist alike when missing or not visible."""
    return (
        _visible(user=user)
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


def _history(work_item: WorkItem) -> QuerySet:
    return (
        WorkItem.history.filter(id=work_item.pk)
        .select_related("history_user", "assignee")
        .order_by("-history_date", "-history_id")
    )


def work_item_history(*, user: Any, work_item: WorkItem) -> QuerySet:
    """Every recorded change of a visible item, newest first, with who and why."""
    if not access.can_see(user=user, work_item=work_item):
        return WorkItem.history.none()
    return _history(work_item)


def _actions(*, user: Any, work_item: WorkItem, document: Document) -> frozenset[str]:
    # For an item the user may see (checked by the caller): roles and states.
    actions: set[str] = set()
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
        # access.can_work, less the visibility the caller has established.
        works = any(user.has_perm(permission) for permission in access.WORKING)
        if work_item.assignee_id != user.pk and works:
            actions.add("take")
        if work_item.status == WorkItemStatus.ASSIGNED and (
            user.has_perm(access.ASSIGN) or work_item.assignee_id == user.pk
        ):
            actions.add("unassign")
    elif user.has_perm(access.REOPEN):
        actions.add("reopen")
    return frozenset(actions)


def _cannot_succeed(document: Document, actions: frozenset[str]) -> dict[str, str]:
    # What the role allows but the directory would refuse: a resend to a practice
    # no longer open (it only fails again), a reroute with nowhere to go.
    blocked: dict[str, str] = {}
    if WorkItemResolution.RESEND in actions:
        try:
            destination_for_sending(ods_code=document.destination_ods_code)
        except CorrectionRefused as refused:
            blocked[WorkItemResolution.RESEND] = (
                f"Resend is not available: {refused.message} Reroute it or send it "
                "by another route."
            )
    if WorkItemResolution.REROUTE in actions:
        elsewhere = (
            Organisation.objects.filter(status=OrganisationStatus.ACTIVE)
            .exclude(endpoint_type="")
            .exclude(ods_code=document.destination_ods_code)
        )
        if not elsewhere.exists():
            blocked[WorkItemResolution.REROUTE] = (
                "Reroute is not available: the directory has no other active "
                "practice to send it to."
            )
    return blocked


def work_item_actions(*, user: Any, work_item: WorkItem) -> frozenset[str]:
    """What the user may do to the item now, by role, grants, states and the
    directory (a resend to a closed practice is not offered)."""
    # Resolutions by value, plus assign, take, unassign and reopen. One offered here
    # can still be refused by what only its service checks (content).
    if not access.can_see(user=user, work_item=work_item):
        return frozenset()
    document = Document.objects.get(pk=work_item.document_id)
    actions = _actions(user=user, work_item=work_item, document=document)
    return actions - frozenset(_cannot_succeed(document, actions))


def _people_who_may_work(
    *, team_ids: set[int | None], organisation_ids: set[int]
) -> list[Any]:
    # access.can_work for every active person and every item of these teams and
    # sending organisations, in six statements whatever the number of staff or
    # items: a superuser, or a role that views and works items (held directly or
    # by a group), and each team and sending organisation granted (by a role
    # permission for all of them, or a django-guardian grant on the one object,
    # directly or by a group). An item with no team needs the role permission.
    user_model = get_user_model()
    names = (access.VIEW, *access.WORKING, access.WORK_TEAM_ITEMS, ACCESS_DOCUMENTS)
    wanted = Q()
    for name in names:
        app_label, codename = name.split(".", 1)
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    name_of = {
        pk: f"{app_label}.{codename}"
        for pk, app_label, codename in Permission.objects.filter(wanted).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    held: dict[int, set[str]] = {}  # person -> role permissions
    direct = user_model.user_permissions.through.objects.filter(
        permission_id__in=name_of
    ).values_list("user_id", "permission_id")
    by_group = user_model.groups.through.objects.filter(
        group__permissions__in=name_of
    ).values_list("user_id", "group__permissions")
    for person, permission in [*direct, *by_group]:
        held.setdefault(person, set()).add(name_of[permission])
    # Grants on the items' own teams and sending organisations, by permission and
    # the object they were given on.
    team_type = ContentType.objects.get_for_model(Team)
    sender_type = ContentType.objects.get_for_model(SendingOrganisation)
    teams = {team for team in team_ids if team is not None}
    objects = Q(
        content_type=sender_type,
        object_pk__in=[str(pk) for pk in organisation_ids],
    ) | Q(content_type=team_type, object_pk__in=[str(pk) for pk in teams])
    granted = [
        *UserObjectPermission.objects.filter(
            objects, permission_id__in=name_of
        ).values_list("user_id", "permission_id", "content_type_id", "object_pk"),
        *GroupObjectPermission.objects.filter(
            objects, permission_id__in=name_of, group__user__isnull=False
        ).values_list("group__user", "permission_id", "content_type_id", "object_pk"),
    ]
    on_objects: dict[int, set[tuple[str, int, str]]] = {}  # person -> grants
    for person, permission, content_type, object_pk in granted:
        on_objects.setdefault(person, set()).add(
            (name_of[permission], content_type, object_pk)
        )

    def covers(person: int, roles: set[str], permission: str, kind, ids) -> bool:
        if permission in roles:
            return True
        grants = on_objects.get(person, ())
        return all(
            pk is not None and (permission, kind.pk, str(pk)) in grants for pk in ids
        )

    may_work = [
        person
        for person, roles in held.items()
        if access.VIEW in roles
        and roles.intersection(access.WORKING)
        and covers(person, roles, access.WORK_TEAM_ITEMS, team_type, team_ids)
        and covers(person, roles, ACCESS_DOCUMENTS, sender_type, organisation_ids)
    ]
    return list(
        user_model.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(pk__in=may_work))
        .order_by("username")
    )


def work_item_assignees(*, work_item: WorkItem) -> list[Any]:
    """People who may be given the item: working role, team and organisation."""
    return _people_who_may_work(
        team_ids={work_item.team_id},
        organisation_ids={work_item.sending_organisation_id},
    )


def work_item_assignee_candidates(
    *, user: Any, work_items: list[WorkItem]
) -> list[Any]:
    """People a user with assign may give every one of these items to: exactly
    those work_item_assign accepts (working role, each team and organisation)."""
    # Six statements whatever the number of items or staff; none without assign or
    # without items.
    if not user.has_perm(access.ASSIGN) or not work_items:
        return []
    return _people_who_may_work(
        team_ids={item.team_id for item in work_items},
        organisation_ids={item.sending_organisation_id for item in work_items},
    )


def _newest(queryset: QuerySet, *order: str, oldest_first: bool) -> Rows:
    rows = list(queryset.order_by(*order)[: ITEM_PAGE_ROWS + 1])
    more = len(rows) > ITEM_PAGE_ROWS
    rows = rows[:ITEM_PAGE_ROWS]
    return Rows(rows=rows[::-1] if oldest_first else rows, more=more)


def work_item_page(*, user: Any, public_id: uuid.UUID) -> WorkItemPage:
    """One visible item and its page's lists, the newest rows of each, bounded."""
    # A fixed number of statements: visibility decided once (by work_item_get, which
    # raises DoesNotExist alike for a missing or hidden item), every list capped at
    # ITEM_PAGE_ROWS with its related rows, the assignees in one statement.
    item = work_item_get(user=user, public_id=public_id)
    document = item.document
    actions = _actions(user=user, work_item=item, document=document)
    unavailable = _cannot_succeed(document, actions)
    actions = actions - frozenset(unavailable)
    return WorkItemPage(
        item=item,
        actions=actions,
        unavailable=unavailable,
        assignees=work_item_assignees(work_item=item) if "assign" in actions else [],
        document_events=_newest(
            document_timeline(document=document), "-sequence", oldest_first=True
        ),
        item_events=_newest(
            audit_events_for_target(
                target_type="work_item", target_id=str(item.public_id)
            ),
            "-sequence",
            oldest_first=True,
        ),
        transmissions=_newest(
            document.transmissions.all(), "-created_at", "-id", oldest_first=True
        ),
        history=_newest(
            _history(item), "-history_date", "-history_id", oldest_first=False
        ),
    )


@dataclass(frozen=True)
class ReroutePreview:
    """What rerouting an item's document to one practice would do, or why not."""

    ods_code: str
    organisation: Organisation | None
    profile_name: str
    current_ods_code: str
    current_name: str
    # Why the reroute would be refused; None when it can go.
    problem: str | None
    # The document was sent before (a transmission stays linked), and whether the
    # last answer was a rejection.
    sent_before: bool
    rejected: bool


def work_item_reroute_preview(
    *, user: Any, work_item: WorkItem, ods_code: str
) -> ReroutePreview:
    """The practice a reroute would go to, from the directory, and whether the
    reroute service would take it (same checks, nothing written)."""
    # The service checks again under lock when the person confirms.
    if not access.can_see(user=user, work_item=work_item):
        raise WorkItem.DoesNotExist
    document = Document.objects.select_related("destination").get(
        pk=work_item.document_id
    )
    code = (ods_code or "").strip().upper()
    organisation = Organisation.objects.filter(ods_code=code).first()
    profile_name = ""
    problem = None
    if code == document.destination_ods_code:
        problem = (
            f"The document is already addressed to {code}. Enter another practice."
        )
    else:
        try:
            destination = destination_for_sending(ods_code=code)
            profile_name = destination.profile.name
            document_payload_fit_check(document=document, destination=destination)
        except CorrectionRefused as refused:
            problem = refused.message
    return ReroutePreview(
        ods_code=code,
        organisation=organisation,
        profile_name=profile_name,
        current_ods_code=document.destination_ods_code,
        current_name=document.destination.name if document.destination else "",
        problem=problem,
        sent_before=document.transmissions.exists(),
        rejected=document.status == DocumentStatus.REJECTED,
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
