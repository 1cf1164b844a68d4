"""Re-tracing a work item's patient on PDS: a person asks, docflow records what PDS
said. Nothing here reroutes: a person reads the answer and decides.

The look-up (the hook in ``casework.patient_lookup``, which ``transmissions``
answers with PDS) is HTTP, made outside any transaction; only the record of it
(a ``PatientTrace``, one audit event, one access-log row) is written in one.
Every look-up is recorded, an unavailable PDS too.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AccessChannel
from audit.services import access_log_record, audit_record
from casework.errors import WorkItemError
from casework.models import PatientTrace, PatientTraceOutcome, WorkItem
from casework.patient_lookup import (
    PatientLookupAnswer,
    PatientLookupFailed,
    patient_lookup,
)
from casework.services.recording import require, require_active

TRACE = "casework.trace_patient"
# Rejections a PDS answer helps with: no longer registered (REJ01), never
# registered (REJ02), details do not match (REJ06), deceased (REJ07).
TRACEABLE_REASONS = frozenset({"REJ01", "REJ02", "REJ06", "REJ07"})
ERROR_TEXT_MAX = 255


def work_item_traceable(work_item: WorkItem) -> bool:
    """The item is active and its rejection is one a PDS re-trace helps with."""
    return work_item.is_active and work_item.reason_code in TRACEABLE_REASONS


def _found(answer: PatientLookupAnswer) -> dict[str, Any]:
    # A registration PDS says has ended names no current practice.
    current = bool(answer.practice_ods_code) and (
        answer.practice_until is None or answer.practice_until >= timezone.localdate()
    )
    return {
        "outcome": PatientTraceOutcome.FOUND,
        "practice_ods_code": answer.practice_ods_code if current else "",
        "practice_since": answer.practice_since if current else None,
        "deceased": answer.deceased,
        "deceased_on": answer.deceased_on,
        "restricted": answer.restricted,
        "superseded": answer.superseded,
    }


def work_item_patient_trace(
    *, work_item: WorkItem, actor: Any, channel: str = AccessChannel.STAFF_PAGE
) -> PatientTrace:
    """Look the item's patient up on PDS and record the answer: REJ01, REJ02,
    REJ06 and REJ07 items only, active, by a person allowed to trace who may see
    the item.

    Call outside a transaction: the look-up waits on PDS for up to
    ``DOCFLOW_PDS_TIMEOUT`` seconds. Refusals (``WorkItemError``) come before it.
    """
    item = WorkItem.objects.select_related("document").get(pk=work_item.pk)
    require(actor=actor, work_item=item, permission=TRACE)
    require_active(item)
    if item.reason_code not in TRACEABLE_REASONS:
        raise WorkItemError(
            "A PDS re-trace helps only with rejections REJ01, REJ02, REJ06 and "
            f"REJ07; this item is {item.reason_code or 'not a rejection'}.",
            code="not_traceable",
        )
    lookup = patient_lookup()
    try:
        fields = _found(
            lookup(
                nhs_number=item.document.nhs_number,
                correlation_id=str(item.public_id),
            )
        )
    except PatientLookupFailed as failure:
        fields = {
            "outcome": failure.outcome,
            "error_text": str(failure)[:ERROR_TEXT_MAX],
        }
    return _record(item=item, actor=actor, channel=channel, fields=fields)


@transaction.atomic
def _record(
    *, item: WorkItem, actor: Any, channel: str, fields: dict[str, Any]
) -> PatientTrace:
    trace = PatientTrace.objects.create(
        work_item=item, document=item.document, actor=actor, **fields
    )
    audit_record(
        action="work_item.patient_traced",
        target_type="work_item",
        target_id=str(item.public_id),
        data={
            "document": str(item.document.public_id),
            "reason_code": item.reason_code,
            "trace": str(trace.public_id),
            "outcome": trace.outcome,
            "practice_ods_code": trace.practice_ods_code,
            "deceased": trace.deceased,
            "restricted": trace.restricted,
            "superseded": trace.superseded,
        },
        actor=actor,
    )
    access_log_record(
        actor=actor,
        channel=channel,
        action="pds_trace",
        target_type="document",
        target_id=str(item.document.public_id),
        reason=f"PDS re-trace for work item {item.public_id} ({item.reason_code})",
    )
    return trace
