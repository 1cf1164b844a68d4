"""Casework staff pages: parse input, call a selector or a service, render.

Items are addressed by their public UUID only; pages show metadata, never patient
identifiers. Every button posts to one action view that calls one service; a refusal
(``WorkItemError``) becomes a message on the page.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from audit.models import AccessChannel
from audit.services import access_log_record
from casework import access, services
from casework.errors import WorkItemError, WorkItemInvalid
from casework.forms import (
    ASSIGNEE_ME,
    ASSIGNEE_NOBODY,
    SCOPE_MINE,
    AssignForm,
    BulkAssignForm,
    CorrectedVersionForm,
    OtherRouteForm,
    QueueFilterForm,
    ReasonForm,
    RequiredReasonForm,
    RerouteForm,
    ViewDocumentForm,
    cursor_encode,
)
from casework.models import WorkItem, WorkItemResolution
from casework.queue_order import PRIORITY, SORT_CAPTIONS
from casework.selectors import (
    ITEM_PAGE_ROWS,
    WorkItemFilters,
    teams_for,
    work_item_assignee_candidates,
    work_item_assignees,
    work_item_buckets,
    work_item_get,
    work_item_page,
    work_items_visible,
    work_queue_page,
)
from docflow.models import Document
from docflow.payload_store import payload_blob_read
from docflow.selectors import document_current_payload, document_get

PAGE_SIZE = 25
VIEW_CONTENT = "docflow.view_document_content"
R = WorkItemResolution


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
            services.work_item_assign(
                work_item=item,
                assignee=form.cleaned_data["assignee"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
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


@dataclass(frozen=True)
class Action:
    """One button: the form it shows, the permission key from work_item_actions,
    and the service call it makes."""

    slug: str
    key: str
    label: str
    form_class: type
    leaves_queue: bool = True


ACTIONS = {
    action.slug: action
    for action in [
        Action("take", "take", "Take it", ReasonForm, leaves_queue=False),
        Action("assign", "assign", "Assign", AssignForm, leaves_queue=False),
        Action("unassign", "unassign", "Unassign", ReasonForm, leaves_queue=False),
        Action("reopen", "reopen", "Reopen", RequiredReasonForm, leaves_queue=False),
        Action("resend", R.RESEND, "Resend unchanged", ReasonForm),
        Action("reroute", R.REROUTE, "Reroute to another practice", RerouteForm),
        Action(
            "corrected-version",
            R.CORRECTED_VERSION,
            "Send a corrected version",
            CorrectedVersionForm,
        ),
        Action("other-route", R.OTHER_ROUTE, "Sent by another route", OtherRouteForm),
        Action(
            "no-further-action",
            R.NO_FURTHER_ACTION,
            "Close with no further action",
            RequiredReasonForm,
        ),
        Action(
            "cancel-document",
            R.DOCUMENT_CANCELLED,
            "Cancel the document",
            RequiredReasonForm,
        ),
    ]
}


def _form_for(action: Action, item: WorkItem, data=None, files=None, *, people=None):
    # Each button's form has its own prefix: several share a page (and field names).
    if action.form_class is AssignForm:
        if people is None:
            people = work_item_assignees(work_item=item)
        return AssignForm(data, prefix=action.slug, people=people)
    return action.form_class(data, files, prefix=action.slug)


def _perform(action: Action, item: WorkItem, form, actor) -> WorkItem:
    data = form.cleaned_data
    reason = data.get("reason", "")
    common = {"work_item": item, "actor": actor}
    match action.slug:
        case "take":
            return services.work_item_assign(**common, assignee=actor, reason=reason)
        case "assign":
            return services.work_item_assign(
                **common, assignee=data["assignee"], reason=reason
            )
        case "unassign":
            return services.work_item_unassign(**common, reason=reason)
        case "reopen":
            return services.work_item_reopen(**common, reason=reason)
        case "resend":
            return services.work_item_resolve_resend(**common, reason=reason)
        case "reroute":
            return services.work_item_resolve_reroute(
                **common, ods_code=data["ods_code"], reason=reason
            )
        case "corrected-version":
            upload = data.get("content")
            return services.work_item_resolve_corrected_version(
                **common,
                reason=reason,
                content=upload.read() if upload else None,
                declared_extension=(
                    upload.name.rsplit(".", 1)[-1].lower()
                    if upload and "." in upload.name
                    else ""
                ),
            )
        case "other-route":
            return services.work_item_resolve_other_route(
                **common,
                channel=data["channel"],
                reference=data["reference"],
                reason=reason,
            )
        case "no-further-action":
            return services.work_item_resolve_no_further_action(**common, reason=reason)
        case "cancel-document":
            return services.work_item_cancel_document(**common, reason=reason)
    raise Http404


def _item_or_404(request, public_id: uuid.UUID) -> WorkItem:
    try:
        return work_item_get(user=request.user, public_id=public_id)
    except WorkItem.DoesNotExist:
        raise Http404("No such work item.") from None


def _render_item(request, public_id: uuid.UUID, *, bound=None, status: int = 200):
    try:
        page = work_item_page(user=request.user, public_id=public_id)
    except WorkItem.DoesNotExist:
        raise Http404("No such work item.") from None
    item = page.item
    actions = []
    for action in ACTIONS.values():
        if action.key not in page.actions:
            continue
        if bound and bound[0] is action:
            form = bound[1]
        else:
            form = _form_for(action, item, people=page.assignees)
        actions.append({"action": action, "form": form})
    view_form = bound[1] if bound and bound[0] == "view-document" else None
    context = {
        "item": item,
        "document": item.document,
        "actions": actions,
        "bound_action": bound[0] if bound else None,
        "can_view_content": request.user.has_perm(VIEW_CONTENT),
        "view_form": view_form or ViewDocumentForm(prefix="view"),
        "document_events": page.document_events,
        "item_events": page.item_events,
        "transmissions": page.transmissions,
        "history": page.history,
        "page_rows": ITEM_PAGE_ROWS,
        "now": timezone.now(),
    }
    return render(request, "casework/item.html", context, status=status)


@require_GET
@login_required
def item_detail(request, public_id: uuid.UUID):
    """One work item, its document's metadata and timeline, and its buttons."""
    return _render_item(request, public_id)


@require_POST
@login_required
def item_action(request, public_id: uuid.UUID, action: str):
    """One button: validate its form, call its service, report the outcome."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise Http404("No such action.")
    item = _item_or_404(request, public_id)
    form = _form_for(chosen, item, request.POST, request.FILES)
    if not form.is_valid():
        return _render_item(request, item.public_id, bound=(chosen, form), status=400)
    try:
        item = _perform(chosen, item, form, request.user)
    except WorkItemInvalid as error:
        for field, problems in error.errors.items():
            for _code, message in problems:
                form.add_error(None, f"{field}: {message}")
        form.add_error(None, error.message)
        return _render_item(request, item.public_id, bound=(chosen, form), status=400)
    except WorkItemError as error:
        messages.error(request, error.message)
        return redirect("casework:item", public_id=item.public_id)
    if chosen.leaves_queue and not item.is_active:
        messages.success(
            request,
            f"{item.get_resolution_display()}. The work item is closed.",
        )
        return redirect("casework:queue")
    messages.success(request, f"{chosen.label}: done.")
    return redirect("casework:item", public_id=item.public_id)


@require_POST
@login_required
def document_content(request, public_id: uuid.UUID):
    """The document's current bytes, shown inline after a reason; access logged."""
    item = _item_or_404(request, public_id)
    if not request.user.has_perm(VIEW_CONTENT):
        messages.error(request, "You do not have permission to view patient content.")
        return redirect("casework:item", public_id=item.public_id)
    form = ViewDocumentForm(request.POST, prefix="view")
    if not form.is_valid():
        return _render_item(
            request, item.public_id, bound=("view-document", form), status=400
        )
    try:
        document = document_get(user=request.user, public_id=item.document.public_id)
    except Document.DoesNotExist:
        raise Http404("No such work item.") from None
    payload = document_current_payload(document=document)
    if payload is None:
        messages.error(request, "The document's content has been purged.")
        return redirect("casework:item", public_id=item.public_id)
    access_log_record(
        actor=request.user,
        channel=AccessChannel.STAFF_PAGE,
        action="view",
        target_type="document",
        target_id=str(document.public_id),
        reason=form.cleaned_data["reason"],
    )
    content = payload_blob_read(
        storage_name=payload.storage_name, expected_sha256=payload.sha256
    )
    response = HttpResponse(content, content_type=payload.media_type)
    response["Content-Disposition"] = (
        f'inline; filename="{document.public_id}.{payload.file_extension}"'
    )
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
