"""The item page's PDS re-trace: a button that asks PDS, and what PDS said, in plain
words. The answer never reroutes: it offers a link to the reroute confirmation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils import formats
from django.views.decorators.http import require_POST

from casework.errors import WorkItemError
from casework.models import PatientTrace, PatientTraceOutcome, WorkItem
from casework.selectors import work_item_get
from casework.services.tracing import (
    TRACE,
    work_item_patient_trace,
    work_item_traceable,
)
from casework.trace_selectors import work_item_latest_patient_trace

UNAVAILABLE = "PDS unavailable, try again"
Outcome = PatientTraceOutcome
WITHOUT_ANSWER = {
    Outcome.NOT_FOUND: "PDS holds no patient with this NHS number",
    Outcome.INVALIDATED: "this NHS number was invalidated on PDS (and not replaced)",
    Outcome.INVALID_NHS_NUMBER: "not a valid NHS number: check the patient's details "
    "with the sender",
    Outcome.UNAVAILABLE: UNAVAILABLE,
}


def _date(value) -> str:
    return formats.date_format(value, "j M Y")


@dataclass
class TracePanel:
    """What the partial ``casework/_patient_trace.html`` shows: the latest trace
    (None: not looked up yet), its findings in plain words, the reroute link."""

    trace: PatientTrace | None = None
    findings: list[str] = field(default_factory=list)
    reroute_ods_code: str = ""
    reroute_href: str = ""


def _reroute_href(item: WorkItem, ods_code: str) -> str:
    try:
        base = reverse("casework:item-reroute", args=[item.public_id])
    except NoReverseMatch:  # the confirmation page is not wired in yet
        base = reverse("casework:item", args=[item.public_id]) + "reroute/"
    return f"{base}?{urlencode({'ods_code': ods_code})}"


def _findings(trace: PatientTrace, item: WorkItem) -> list[str]:
    if trace.outcome in WITHOUT_ANSWER:
        return [WITHOUT_ANSWER[trace.outcome]]
    if trace.outcome == Outcome.FAILED:
        return [f"PDS refused the look-up: {trace.error_text}"]
    findings = []
    if trace.practice_ods_code:
        name = getattr(trace, "practice_name", None)
        words = f"registered at {trace.practice_ods_code}"
        words += f" {name}" if name else " (not in docflow's directory)"
        if trace.practice_since:
            words += f" since {_date(trace.practice_since)}"
        if trace.practice_ods_code == item.document.destination_ods_code:
            words += ", the practice the letter was sent to"
        findings.append(words)
    elif trace.restricted:
        findings.append("restricted record: no practice shown")
    else:
        findings.append("no registered practice shown")
    if trace.deceased:
        on = f" on {_date(trace.deceased_on)}" if trace.deceased_on else ""
        findings.append(f"deceased{on}")
    if trace.superseded:
        findings.append(
            "this NHS number was superseded by another: PDS answered with the "
            "newer record; ask the sender to correct the patient's details"
        )
    return findings


def patient_trace_panel(*, user: Any, item: WorkItem) -> TracePanel | None:
    """The panel for the item page (``item`` as the page read it, visibility
    checked): None when the item is not one a re-trace helps with or the user's
    role may not trace."""
    if not work_item_traceable(item) or not user.has_perm(TRACE):
        return None
    trace = work_item_latest_patient_trace(user=user, work_item=item)
    panel = TracePanel(trace=trace)
    if trace is None:
        return panel
    panel.findings = _findings(trace, item)
    code = trace.practice_ods_code
    if code and code != item.document.destination_ods_code and not trace.deceased:
        panel.reroute_ods_code = code
        panel.reroute_href = _reroute_href(item, code)
    return panel


@require_POST
@login_required
def item_trace(request, public_id: uuid.UUID):
    """Ask PDS about the item's patient, record it, and go back to the item."""
    try:
        item = work_item_get(user=request.user, public_id=public_id)
    except WorkItem.DoesNotExist:
        raise Http404("No such work item.") from None
    try:
        trace = work_item_patient_trace(work_item=item, actor=request.user)
    except WorkItemError as error:
        messages.error(request, error.message)
    else:
        if trace.outcome == Outcome.UNAVAILABLE:
            messages.error(request, f"{UNAVAILABLE}.")
        else:
            messages.success(request, "PDS answered: see “What PDS said”.")
    return redirect(reverse("casework:item", args=[item.public_id]) + "#patient-trace")
