"""Who may see and work which items: role permissions (groups) decide the actions,
django-guardian grants on teams and sending organisations decide the items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from casework.models import Team, WorkItem
from docflow.selectors import visible_sending_organisation_ids

VIEW = "casework.view_workitem"
ASSIGN = "casework.assign_workitem"
RESEND = "casework.resend_workitem"
DECIDE = "casework.decide_workitem"
REOPEN = "casework.reopen_workitem"
WORK_TEAM_ITEMS = "casework.work_team_items"
WORKING = (RESEND, DECIDE)


def _is_staff_user(user: Any) -> bool:
    return (
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
    )


def visible_team_ids(*, user: Any) -> list[int] | None:
    """Teams whose items the user sees; None: every team and unteamed items."""
    # A global grant (or a superuser) also sees items that have no team yet.
    if not _is_staff_user(user):
        return []
    if user.is_superuser or user.has_perm(WORK_TEAM_ITEMS):
        return None
    granted = get_objects_for_user(
        user, WORK_TEAM_ITEMS, klass=Team, accept_global_perms=False
    )
    return list(granted.values_list("id", flat=True))


@dataclass(frozen=True)
class Visibility:
    """What a user may see of casework: nothing, or the items (and the queue's
    counts) of these teams and sending organisations (None: every one)."""

    nothing: bool
    team_ids: list[int] | None = None
    organisation_ids: list[int] | None = None

    def narrow(self, queryset: QuerySet) -> QuerySet:
        """Any queryset of rows with a team and a sending organisation, narrowed."""
        if self.nothing:
            return queryset.none()
        if self.team_ids is not None:
            queryset = queryset.filter(team_id__in=self.team_ids)
        if self.organisation_ids is not None:
            queryset = queryset.filter(
                sending_organisation_id__in=self.organisation_ids
            )
        return queryset


def visibility(*, user: Any) -> Visibility:
    """Roles that view items see those of granted teams and sending organisations."""
    if not _is_staff_user(user) or not user.has_perm(VIEW):
        return Visibility(nothing=True)
    if user.is_superuser:
        return Visibility(nothing=False)
    return Visibility(
        nothing=False,
        team_ids=visible_team_ids(user=user),
        organisation_ids=visible_sending_organisation_ids(user=user),
    )


def work_items_visible_to(*, user: Any) -> QuerySet[WorkItem]:
    """Items of granted teams and sending organisations, for roles that view items."""
    return visibility(user=user).narrow(WorkItem.objects.all())


def can_see(*, user: Any, work_item: WorkItem) -> bool:
    """The user may see this item."""
    return work_items_visible_to(user=user).filter(pk=work_item.pk).exists()


def can_act(*, user: Any, work_item: WorkItem, permission: str) -> bool:
    """The user's role has the permission and the user may see the item."""
    return (
        _is_staff_user(user)
        and user.has_perm(permission)
        and can_see(user=user, work_item=work_item)
    )


def can_work(*, user: Any, work_item: WorkItem) -> bool:
    """The user may be given the item: a working role and both grants."""
    return (
        _is_staff_user(user)
        and any(user.has_perm(permission) for permission in WORKING)
        and can_see(user=user, work_item=work_item)
    )
