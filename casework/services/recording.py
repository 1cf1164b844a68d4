"""The steps every work item write shares: lock in a fixed order, check who acts,
save with a history row naming the user and the reason, and one audit event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditEvent
from audit.redaction import pseudonymise_nhs_numbers
from audit.services import audit_record
from casework.access import can_act
from casework.errors import (
    WorkItemHeldByOther,
    WorkItemInvalid,
    WorkItemPermissionDenied,
    WorkItemStale,
    WorkItemStateError,
)
from casework.models import ACTIVE_STATUSES, WorkItem, WorkItemStatus
from docflow.models import Document

ITEM_FIELDS_ON_END = [
    "status",
    "resolution",
    "resolution_reason",
    "resolution_details",
    "closed_by",
    "closed_at",
]


def history_user(actor: Any) -> Model | None:
    """The user a history row names: people only (the system and API keys: none)."""
    if isinstance(actor, get_user_model()) and actor.pk is not None:
        return actor
    return None


def lock(work_item: WorkItem) -> tuple[WorkItem, Document]:
    """Lock the document, then its item: the order the engine locks them in."""
    document_id = (
        WorkItem.objects.filter(pk=work_item.pk)
        .values_list("document_id", flat=True)
        .get()
    )
    document = Document.objects.select_for_update().get(pk=document_id)
    item = WorkItem.objects.select_for_update().get(pk=work_item.pk)
    item.document = document
    return item, document


def require(
    *, actor: Any, work_item: WorkItem, permission: str | tuple[str, ...]
) -> None:
    """Refuse unless a person with the role (any of several) and both grants acts."""
    if history_user(actor) is None:
        raise WorkItemPermissionDenied("Only a signed-in person can do this.")
    permissions = (permission,) if isinstance(permission, str) else permission
    if not any(
        can_act(user=actor, work_item=work_item, permission=name)
        for name in permissions
    ):
        raise WorkItemPermissionDenied(
            "You may not do this to this work item: it needs a role that allows "
            "it and access to the item's team and sending organisation."
        )


def require_active(work_item: WorkItem) -> None:
    """Refuse when the item was already resolved, cancelled or closed."""
    if not work_item.is_active:
        raise WorkItemStateError(
            f"This work item is already {work_item.get_status_display().lower()}"
            f" ({work_item.get_resolution_display().lower()}).",
            code="already_ended",
        )


def work_item_change_summary(item: WorkItem) -> str:
    """What the item's latest change was, who made it and when, in a few words."""
    record = (
        WorkItem.history.filter(id=item.pk)
        .select_related("history_user", "assignee")
        .order_by("-history_date", "-history_id")
        .first()
    )
    if record is None:  # pragma: no cover - every saved item has a history row
        return "it was changed"
    who = record.history_user.get_username() if record.history_user else "the system"
    at = timezone.localtime(record.history_date).strftime("%H:%M")
    if record.status == WorkItemStatus.ASSIGNED and record.assignee is not None:
        holder = record.assignee.get_username()
        by = "" if holder == who else f" by {who}"
        return f"assigned to {holder}{by} at {at}"
    if record.status in ACTIVE_STATUSES:
        return f"returned to the team queue by {who} at {at}"
    outcome = item.get_resolution_display().lower() if item.resolution else "ended"
    return f"{outcome} by {who} at {at}"


def require_current(item: WorkItem, *, expected_version: int | None) -> None:
    """Refuse an action taken on an older page of the item: say what changed."""
    # None: the caller shows no page (the API, tasks, bulk actions checked per item).
    if expected_version is None or expected_version == item.version:
        return
    raise WorkItemStale(
        f"This item changed since you opened it: {work_item_change_summary(item)}. "
        "Review it and try again."
    )


def require_holder_confirmed(
    item: WorkItem, *, actor: Any, holder_confirmed: bool
) -> None:
    """Refuse to act on an item another person holds unless the actor said they know."""
    if item.assignee_id is None or item.assignee_id == getattr(actor, "pk", None):
        return
    if holder_confirmed:
        return
    holder = item.assignee.get_username()
    raise WorkItemHeldByOther(
        f"{holder} holds this item. Confirm you know {holder} holds it to act on it."
    )


def required_reason(reason: str, *, what: str) -> str:
    """A reason a person must give, stripped, any valid NHS number in it replaced
    by its keyed hash before it is stored; refused when blank."""
    reason = (reason or "").strip()
    if not reason:
        raise WorkItemInvalid(f"Give a reason to {what}.", code="reason_required")
    return pseudonymise_nhs_numbers(reason)


def save_and_audit(
    item: WorkItem,
    *,
    fields: list[str],
    action: str,
    change_reason: str,
    actor: Any,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Save the item one version on (history row: the user, the reason) and chain
    one audit event."""
    item.version += 1
    item._change_reason = change_reason
    item._history_user = history_user(actor)
    item.save(update_fields=[*fields, "version"])
    return audit_record(
        action=f"work_item.{action}",
        target_type="work_item",
        target_id=str(item.public_id),
        data={
            "document": str(item.document.public_id),
            "category": item.category,
            "reason_code": item.reason_code,
            "status": item.status,
            **(data or {}),
        },
        actor=actor,
    )


def enqueue_on_commit(task: str, *args: Any) -> None:
    """Queue a task by dotted name once the surrounding transaction commits."""
    transaction.on_commit(lambda: async_task(task, *args))
