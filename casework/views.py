"""The work item pages, under /work/items/: parse input, call a selector or a
service, render.

Items are addressed by their public UUID only; pages show metadata, never patient
identifiers (those only on reveal, with a reason). Every button posts to one action
view that calls one service; a refusal (``WorkItemError``) becomes a message on the
page. The queue and bulk assignment are in ``casework.queue_views``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)

from audit.models import AccessChannel
from casework import services
from casework.errors import (
    RerouteNotConfirmed,
    RerouteRefused,
    WorkItemError,
    WorkItemHeldByOther,
    WorkItemInvalid,
    WorkItemPermissionDenied,
)
from casework.forms import (
    HOLDER_CONFIRMED,
    VERSION,
    AssignForm,
    CorrectedVersionForm,
    OtherRouteForm,
    ReasonForm,
    RequiredReasonForm,
    RerouteForm,
    RevealPatientForm,
    ViewDocumentForm,
    item_guard_add,
)
from casework.models import WorkItem, WorkItemResolution
from casework.selectors import (
    ITEM_PAGE_ROWS,
    work_item_actions,
    work_item_assignees,
    work_item_get,
    work_item_page,
    work_item_reroute_preview,
)
from casework.services.recording import require_current, require_holder_confirmed
from casework.trace_views import patient_trace_panel
from docflow.errors import ContentPurged
from docflow.models import Document
from docflow.payloads.content import (
    document_content_response,
    document_content_view,
    may_view_content,
)
from docflow.selectors import document_get

R = WorkItemResolution
ODS_CODE = re.compile(r"[A-Z0-9]{3,10}")


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
        # Its form posts to the reroute page, which asks for confirmation.
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
LABEL_FOR_KEY = {action.key: action.label for action in ACTIONS.values()}
REROUTE = ACTIONS["reroute"]
REVEAL = "reveal"
VIEW_DOCUMENT = "view-document"
# The result of the last item-ending action, shown once on the item's page.
OUTCOME_SESSION_KEY = "casework_item_outcome"


def _holder(item: WorkItem, user: Any) -> str | None:
    # Another person holds the active item: acting on it needs their confirmation.
    if item.is_active and item.assignee_id and item.assignee_id != user.pk:
        return item.assignee.get_username()
    return None


def _form_for(
    action: Action, item: WorkItem, user, data=None, files=None, *, people=None
):
    # Each button's form has its own prefix: several share a page (and field names).
    if action.form_class is AssignForm:
        if people is None:
            people = work_item_assignees(work_item=item)
        form = AssignForm(data, prefix=action.slug, people=people)
    else:
        form = action.form_class(data, files, prefix=action.slug)
    holder = None if action.slug == "reopen" else _holder(item, user)
    item_guard_add(form, version=item.version, holder=holder)
    return form


def _current_version(form, item: WorkItem) -> None:
    # A form shown again carries the version the page now shows: a person who was
    # told the item changed reviews it and may then try again.
    if form.is_bound and VERSION in form.fields:
        data = form.data.copy()
        data[form.add_prefix(VERSION)] = str(item.version)
        form.data = data


def _guard(data: dict) -> dict[str, Any]:
    return {
        "expected_version": data[VERSION],
        "holder_confirmed": bool(data.get(HOLDER_CONFIRMED)),
    }


def _perform(action: Action, item: WorkItem, form, actor) -> WorkItem:
    data = form.cleaned_data
    reason = data.get("reason", "")
    common = {"work_item": item, "actor": actor, **_guard(data)}
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
            common.pop("holder_confirmed")
            return services.work_item_reopen(**common, reason=reason)
        case "resend":
            return services.work_item_resolve_resend(**common, reason=reason)
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


def _refusal_field(error: WorkItemError, form) -> str | None:
    # The field a refusal is about, so the error summary links to it.
    if isinstance(error, WorkItemHeldByOther) and HOLDER_CONFIRMED in form.fields:
        return HOLDER_CONFIRMED
    if (
        isinstance(error, RerouteRefused)
        and not isinstance(error, RerouteNotConfirmed)
        and "ods_code" in form.fields
    ):
        return "ods_code"
    if error.code.startswith("reason_") and "reason" in form.fields:
        return "reason"
    return None


def _refuse(form, error: WorkItemError) -> int:
    """Put a service's refusal on the form; the HTTP status it calls for."""
    if isinstance(error, WorkItemInvalid):
        for field, problems in error.errors.items():
            for _code, message in problems:
                form.add_error(None, f"{field}: {message}")
    form.add_error(_refusal_field(error, form), error.message)
    if isinstance(error, WorkItemPermissionDenied):
        return 403
    return 400 if isinstance(error, WorkItemInvalid) else 409


def _item_or_404(request, public_id: uuid.UUID) -> WorkItem:
    try:
        return work_item_get(user=request.user, public_id=public_id)
    except WorkItem.DoesNotExist:
        raise Http404("No such work item.") from None


def item_title(item: WorkItem) -> str:
    """The page title part naming the item: its reason, never its patient."""
    what = item.reason_title or item.get_category_display()
    return f"{item.reason_code} {what}".strip() if item.reason_code else what


def _with_errors(*forms) -> list:
    return [form for form in forms if form is not None and form.errors]


def _render_item(
    request,
    public_id: uuid.UUID,
    *,
    bound_slug: str | None = None,
    bound_form=None,
    identity=None,
    outcome: str | None = None,
    status: int = 200,
):
    try:
        page = work_item_page(user=request.user, public_id=public_id)
    except WorkItem.DoesNotExist:
        raise Http404("No such work item.") from None
    item = page.item
    actions = []
    for action in ACTIONS.values():
        if action.key not in page.actions:
            continue
        if bound_slug == action.slug:
            form = bound_form
            _current_version(form, item)
        else:
            form = _form_for(action, item, request.user, people=page.assignees)
        actions.append({"action": action, "form": form})
    view_form = bound_form if bound_slug == VIEW_DOCUMENT else None
    reveal_form = bound_form if bound_slug == REVEAL else None
    context = {
        "item": item,
        "item_title": item_title(item),
        "document": item.document,
        "actions": actions,
        "unavailable": [
            {"label": LABEL_FOR_KEY.get(key, key), "why": why}
            for key, why in page.unavailable.items()
        ],
        "bound_slug": bound_slug,
        "error_forms": _with_errors(bound_form),
        "can_view_content": may_view_content(request.user),
        "can_reveal": request.user.has_perm(services.VIEW_PATIENT_IDENTITY),
        "view_form": view_form or ViewDocumentForm(prefix="view"),
        "reveal_form": reveal_form or RevealPatientForm(prefix="patient"),
        "identity": identity,
        "outcome": outcome,
        "document_events": page.document_events,
        "item_events": page.item_events,
        "transmissions": page.transmissions,
        "history": page.history,
        "page_rows": ITEM_PAGE_ROWS,
        "now": timezone.now(),
        "patient_trace": patient_trace_panel(user=request.user, item=item),
    }
    response = render(request, "casework/item.html", context, status=status)
    if identity is not None:
        response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def item_detail(request, public_id: uuid.UUID):
    """One work item, its document's metadata and timeline, and its buttons."""
    outcome = request.session.get(OUTCOME_SESSION_KEY)
    if outcome and outcome.get("item") == str(public_id):
        del request.session[OUTCOME_SESSION_KEY]
        return _render_item(request, public_id, outcome=outcome["message"])
    return _render_item(request, public_id)


@require_POST
@login_required
def item_action(request, public_id: uuid.UUID, action: str):
    """One button: validate its form, call its service, report the outcome."""
    chosen = ACTIONS.get(action)
    if chosen is None or chosen is REROUTE:
        raise Http404("No such action.")
    item = _item_or_404(request, public_id)
    form = _form_for(chosen, item, request.user, request.POST, request.FILES)
    if not form.is_valid():
        return _render_item(
            request, item.public_id, bound_slug=chosen.slug, bound_form=form, status=400
        )
    try:
        item = _perform(chosen, item, form, request.user)
    except WorkItemError as error:
        status = _refuse(form, error)
        return _render_item(
            request,
            item.public_id,
            bound_slug=chosen.slug,
            bound_form=form,
            status=status,
        )
    if chosen.leaves_queue and not item.is_active:
        messages.success(
            request,
            f"{item.get_resolution_display()}. The work item is closed.",
        )
        return redirect("casework:queue")
    messages.success(request, f"{chosen.label}: done.")
    return redirect("casework:item", public_id=item.public_id)


def _render_reroute(request, item: WorkItem, form, *, status: int = 200):
    return render(
        request,
        "casework/reroute.html",
        {
            "item": item,
            "item_title": item_title(item),
            "form": form,
            "error_forms": _with_errors(form),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@login_required
def item_reroute(request, public_id: uuid.UUID):
    """Reroute in steps: the practice and a reason; a page naming the practice and
    what will happen; only its confirm button reroutes."""
    item = _item_or_404(request, public_id)
    if REROUTE.key not in work_item_actions(user=request.user, work_item=item):
        messages.error(request, "This item cannot be rerouted now; see why below.")
        return redirect("casework:item", public_id=item.public_id)
    if request.method == "GET":
        form = _form_for(REROUTE, item, request.user)
        suggested = (request.GET.get("ods_code") or "").strip().upper()
        if ODS_CODE.fullmatch(suggested):
            form.initial["ods_code"] = suggested
        return _render_reroute(request, item, form)
    form = _form_for(REROUTE, item, request.user, request.POST)
    if not form.is_valid():
        _current_version(form, item)
        return _render_reroute(request, item, form, status=400)
    if "change" in request.POST:
        return _render_reroute(request, item, form)
    data = form.cleaned_data
    try:
        # Checked here so the person hears at once, and again under lock on confirm.
        require_current(item, expected_version=data[VERSION])
        require_holder_confirmed(
            item, actor=request.user, holder_confirmed=bool(data.get(HOLDER_CONFIRMED))
        )
    except WorkItemError as error:
        status = _refuse(form, error)
        _current_version(form, item)
        return _render_reroute(request, item, form, status=status)
    preview = work_item_reroute_preview(
        user=request.user, work_item=item, ods_code=data["ods_code"]
    )
    if preview.problem:
        form.add_error("ods_code", preview.problem)
        return _render_reroute(request, item, form, status=400)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "casework/reroute_confirm.html",
            {
                "item": item,
                "item_title": item_title(item),
                "form": form,
                "preview": preview,
                "holder_confirmed": bool(data.get(HOLDER_CONFIRMED)),
            },
        )
    try:
        item = services.work_item_resolve_reroute(
            work_item=item,
            ods_code=data["ods_code"],
            reason=data.get("reason", ""),
            actor=request.user,
            confirmation=services.RerouteConfirmation(
                ods_code=data["ods_code"], version=data[VERSION]
            ),
            holder_confirmed=bool(data.get(HOLDER_CONFIRMED)),
        )
    except WorkItemError as error:
        status = _refuse(form, error)
        item = _item_or_404(request, public_id)
        _current_version(form, item)
        return _render_reroute(request, item, form, status=status)
    practice = preview.organisation
    request.session[OUTCOME_SESSION_KEY] = {
        "item": str(item.public_id),
        "message": (
            f"Rerouted to {practice.name} ({practice.ods_code}) as a new transmission."
        ),
    }
    return redirect("casework:item", public_id=item.public_id)


@require_POST
@login_required
def item_patient(request, public_id: uuid.UUID):
    """The item's patient (NHS number, name, birth date), shown on this response only
    after a reason, to people allowed; each reveal is access-logged."""
    item = _item_or_404(request, public_id)
    form = RevealPatientForm(request.POST, prefix="patient")
    if not form.is_valid():
        return _render_item(
            request, item.public_id, bound_slug=REVEAL, bound_form=form, status=400
        )
    try:
        identity = services.work_item_patient_reveal(
            work_item=item, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except WorkItemError as error:
        status = _refuse(form, error)
        return _render_item(
            request, item.public_id, bound_slug=REVEAL, bound_form=form, status=status
        )
    return _render_item(request, item.public_id, identity=identity)


@require_POST
@login_required
def document_content(request, public_id: uuid.UUID):
    """The document's current bytes, shown inline after a reason; access logged."""
    item = _item_or_404(request, public_id)
    if not may_view_content(request.user):
        messages.error(request, "You do not have permission to view patient content.")
        return redirect("casework:item", public_id=item.public_id)
    form = ViewDocumentForm(request.POST, prefix="view")
    if not form.is_valid():
        return _render_item(
            request,
            item.public_id,
            bound_slug=VIEW_DOCUMENT,
            bound_form=form,
            status=400,
        )
    try:
        document = document_get(user=request.user, public_id=item.document.public_id)
    except Document.DoesNotExist:
        raise Http404("No such work item.") from None
    try:
        viewed = document_content_view(
            document=document,
            user=request.user,
            actor=request.user,
            channel=AccessChannel.STAFF_PAGE,
            action="view",
            reason=form.cleaned_data["reason"],
        )
    except ContentPurged as purged:
        messages.error(request, str(purged))
        return redirect("casework:item", public_id=item.public_id)
    return document_content_response(viewed, disposition="inline")
