"""Reads of patient re-traces, for people allowed to trace who may see the item."""

from __future__ import annotations

from typing import Any

from casework import access
from casework.models import PatientTrace, WorkItem
from casework.services.tracing import TRACE
from docflow.models import Organisation


def work_item_can_trace(*, user: Any, work_item: WorkItem) -> bool:
    """The user's role may trace patients and the user may see the item."""
    return access.can_act(user=user, work_item=work_item, permission=TRACE)


def work_item_latest_patient_trace(
    *, user: Any, work_item: WorkItem
) -> PatientTrace | None:
    """The item's newest trace, or None (none yet, or the user may not trace)."""
    if not work_item_can_trace(user=user, work_item=work_item):
        return None
    return (
        PatientTrace.objects.filter(work_item=work_item)
        .select_related("actor")
        .order_by("-traced_at", "-id")
        .first()
    )


def practice_for_trace(*, trace: PatientTrace | None) -> Organisation | None:
    """The directory's entry for the practice a trace names, if docflow knows it."""
    if trace is None or not trace.practice_ods_code:
        return None
    return Organisation.objects.filter(ods_code=trace.practice_ods_code).first()
