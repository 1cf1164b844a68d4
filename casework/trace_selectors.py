"""Reads of patient re-traces, for people allowed to trace who may see the item."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery

from casework.models import PatientTrace, WorkItem
from casework.services.tracing import TRACE
from docflow.models import Organisation


def work_item_latest_patient_trace(
    *, user: Any, work_item: WorkItem
) -> PatientTrace | None:
    """The item's newest trace with ``practice_name`` (the directory's name for the
    practice it names, or None), for a role that may trace; otherwise None.

    ``work_item`` comes from a selector that already checked the user may see it
    (``work_item_get``, ``work_item_page``): one query, for the item page.
    """
    if not user.has_perm(TRACE):
        return None
    directory_name = Organisation.objects.filter(
        ods_code=OuterRef("practice_ods_code")
    ).values("name")[:1]
    return (
        PatientTrace.objects.filter(work_item=work_item)
        .select_related("actor")
        .annotate(practice_name=Subquery(directory_name))
        .order_by("-traced_at", "-id")
        .first()
    )
