"""The work queue page and bulk assignment, under /work/: filters parsed from the
query string, one selector for the page and its counts, one service per assignment.

Items are addressed by their public UUID only; the queue shows metadata, never
patient identifiers.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import (
    require_GET,
    require_POST,
)

from casework import access, services
from casework.errors import (
    WorkItemError,
)
from casework.forms import (
    ASSIGNEE_ME,
    ASSIGNEE_NOBODY,
    SCOPE_MINE,
    BulkAssignForm,
    QueueFilterForm,
    cursor_encode,
)
from casework.models import WorkItem
from casework.queue_order import PRIORITY, SORT_CAPTIONS
from casework.selectors import (
    WorkItemFilters,
    teams_for,
    work_item_assignee_candidates,
    work_item_buckets,
    work_item_get,
    work_items_visible,
    work_queue_page,
)

PAGE_SIZE = 25


# The queue ----------------------------------------------------------------------


def _queue_filters(data: dict, user: Any) -> WorkItemFilters:
    assignee = data.get("assignee")
    age = data.get("age")
    now = timezone.now()
    return WorkItemFilters(
        buckets=tuple(data.get("bucket") or ()),
        team_id=data.get("team"),
        reason_code=data.get("reason") or None,
        destination_ods_code=data.get("destination") or None,
        assignee_id=(
            user.pk
            if assignee == ASSIGNEE_ME or data.get("scope") == SCOPE_MINE
            else None
        ),
        unassigned=assignee == ASSIGNEE_NOBODY,
        opened_before=now - datetime.timedelta(days=int(age)) if age else None,
        overdue_at=now if data.get("overdue") else None,
    )


def _query_without(request, name: str, value: str | None = None) -> str:
    """The page's query string less one parameter (or one of its values), and
    always less the keyset position: a changed filter starts at the first page."""
    query = request.GET.copy()
    query.pop("after", None)
    if value is None:
        query.pop(name, None)
    else:
        query.setlist(name, [kept for kept in query.getlist(name) if kept != value])
    return query.urlencode()


@dataclass(frozen=True)
class AppliedFilter:
    """One filter in force, as the "Filtered by" summary names it, and the query
    string of the same page without it."""

    label: str
    value: str
    remove_query: str


def _applied_filters(request, form: QueueFilterForm, data: dict) -> list:
    applied = []
    for key in data.get("bucket") or ():
        name = dict(form.fields["bucket"].choices).get(key, key)
        applied.append(
            AppliedFilter(
                "Kind of problem", name, _query_without(request, "bucket", key)
            )
        )
    if data.get("team") is not None:
        team = dict(form.fields["team"].choices).get(data["team"], "")
        applied.append(AppliedFilter("Team", team, _query_without(request, "team")))
    for name, label in (("reason", "Reason code"), ("destination", "Destination")):
        if data.get(name):
            applied.append(
                AppliedFilter(label, data[name], _query_without(request, name))
            )
    if data.get("age"):
        applied.append(
            AppliedFilter(
                "Age",
                dict(form.fields["age"].choices)[data["age"]],
                _query_without(request, "age"),
            )
        )
    if data.get("assignee"):
        applied.append(
            AppliedFilter(
                "Assigned to",
                dict(form.fields["assignee"].choices)[data["assignee"]],
                _query_without(request, "assignee"),
            )
        )
    if data.get("overdue"):
        applied.append(
            AppliedFilter("Due", "Overdue only", _query_without(request, "overdue"))
        )
    return applied


@require_GET
@login_required
def queue(request):
    """My items or the team queue: one set of filters, an order, keyset pages."""
    teams = list(teams_for(user=request.user))
    buckets = work_item_buckets()
    form = QueueFilterForm(request.GET or None, teams=teams, buckets=buckets)
    data = form.valid_data() if form.is_bound else {}
    filters = _queue_filters(data, request.user)
    sort = data.get("sort") or PRIORITY
    now = timezone.now()
    page = work_queue_page(
        user=request.user,
        filters=filters,
        size=PAGE_SIZE,
        sort=sort,
        after=data.get("after"),
        buckets=buckets,
        now=now,
    )
    items = page.items
    next_query = None
    if page.next_position is not None:
        query = request.GET.copy()
        query["after"] = cursor_encode(page.next_position)
        next_query = query.urlencode()
    mine = filters.assignee_id == request.user.pk
    people = work_item_assignee_candidates(user=request.user, work_items=items)
    context = {
        "form": form,
        "error_forms": [form],
        "page_has_errors": form.is_bound and bool(form.errors),
        "can_assign": request.user.has_perm(access.ASSIGN),
        "filters": filters,
        "applied": _applied_filters(request, form, data),
        "clear_query": "scope=mine" if mine else "",
        "counts": page.counts,
        "items": items,
        "sort_caption": SORT_CAPTIONS[sort],
        "next_query": next_query,
        "first_query": _query_without(request, "after") if data.get("after") else None,
        "mine": mine,
        "now": now,
        "bulk_form": BulkAssignForm(prefix="bulk", people=people),
    }
    # htmx swaps only the filters and results when the filters change; history
    # restores and everything else get the whole page.
    partial = (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Target") == "queue-results"
        and not request.headers.get("HX-History-Restore-Request")
    )
    template = "casework/_queue_results.html" if partial else "casework/queue.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


def _visible_items(request, public_ids: list[str]) -> list[WorkItem]:
    ids = []
    for value in public_ids:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    return list(work_items_visible(user=request.user, public_ids=ids))


@require_POST
@login_required
def bulk_assign(request):
    """Assign the ticked items to one person; each item is checked by the service."""
    # The people offered are those who may work every ticked item, so a person
    # the service would refuse is refused here, by the form, for all of them.
    ticked = request.POST.getlist("bulk-items")
    people = work_item_assignee_candidates(
        user=request.user, work_items=_visible_items(request, ticked)
    )
    form = BulkAssignForm(
        request.POST,
        prefix="bulk",
        people=people,
        item_ids=ticked,
    )
    back = request.POST.get("next") or ""
    back = back if back.startswith(reverse("casework:queue")) else None
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back or "casework:queue")
    assigned, refused = 0, []
    for public_id in form.cleaned_data["items"]:
        try:
            item = work_item_get(user=request.user, public_id=uuid.UUID(public_id))
            # Ticking the items in the queue, where each row names its holder, is
            # the person's confirmation that they are redistributing held items.
            services.work_item_assign(
                work_item=item,
                assignee=form.cleaned_data["assignee"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
                holder_confirmed=True,
            )
        except (ValueError, WorkItem.DoesNotExist):
            refused.append("An item could not be found.")
        except WorkItemError as error:
            refused.append(error.message)
        else:
            assigned += 1
    if assigned:
        who = form.cleaned_data["assignee"].get_username()
        messages.success(request, f"{assigned} work item(s) assigned to {who}.")
    for message in dict.fromkeys(refused):
        messages.error(request, message)
    return redirect(back or "casework:queue")


# One item -----------------------------------------------------------------------
