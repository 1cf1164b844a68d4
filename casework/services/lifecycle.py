"""Opening and closing items with the document's state, and who works them."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from casework import access
from casework.classification import (
    work_item_classify,
    work_item_report_needs_classifying,
)
from casework.errors import DocumentStateError, WorkItemInvalid, WorkItemStateError
from casework.models import (
    ACTIVE_STATUSES,
    WorkItem,
    WorkItemCategory,
    WorkItemStatus,
)
from casework.services.recording import (
    ITEM_FIELDS_ON_END,
    history_user,
    lock,
    require,
    require_active,
    require_current,
    require_holder_confirmed,
    required_reason,
    save_and_audit,
)
from docflow.models import ATTENTION_STATES, FINAL_STATES, Document, DocumentStatus

# Reason codes that mean "we tried to send and kept failing", as opposed to a document
# that cannot be sent as it is.
SEND_FAILURE_REASONS = frozenset({"RETRIES_EXHAUSTED"})


def work_item_category_for(document: Document) -> str | None:
    """The category a document's state calls for, or None when it needs nobody."""
    status = document.status
    if status == DocumentStatus.HELD:
        if document.status_reason in SEND_FAILURE_REASONS:
            return WorkItemCategory.SEND_FAILED
        return WorkItemCategory.PREFLIGHT
    return {
        DocumentStatus.OUTCOME_UNKNOWN: WorkItemCategory.OUTCOME_UNKNOWN,
        DocumentStatus.REJECTED: WorkItemCategory.REJECTION,
        DocumentStatus.SYSTEM_ERROR: WorkItemCategory.SYSTEM_ERROR,
        DocumentStatus.UNDELIVERED: WorkItemCategory.UNDELIVERED,
    }.get(status)


def _close(item: WorkItem, *, reason: str, actor: Any) -> None:
    item.close(reason=reason, at=timezone.now())
    save_and_audit(
        item,
        fields=ITEM_FIELDS_ON_END,
        action="closed",
        change_reason=reason,
        actor=actor,
        data={"resolution": item.resolution, "reason": reason},
    )


def _open(document: Document, *, category: str, actor: Any) -> WorkItem:
    code = document.status_reason[:64]
    classification = work_item_classify(category=category, reason_code=code)
    now = timezone.now()
    item = WorkItem(
        document=document,
        sending_organisation_id=document.sending_organisation_id,
        urgent=document.urgent,
        category=category,
        reason_code=code,
        bucket=classification.bucket,
        team=classification.team,
        reason_title=classification.title,
        suggested_actions=classification.suggested_actions,
        is_clinical=classification.is_clinical,
        opened_at=now,
        due_at=classification.due_at(now),
    )
    item._change_reason = f"Document {document.status}: {code or 'no code'}"
    item._history_user = history_user(actor)
    item.save()
    audit_record(
        action="work_item.opened",
        target_type="work_item",
        target_id=str(item.public_id),
        data={
            "document": str(document.public_id),
            "category": item.category,
            "reason_code": item.reason_code,
            "bucket": classification.bucket.key if classification.bucket else None,
            "team": classification.team.name if classification.team else None,
            "due_at": item.due_at.isoformat() if item.due_at else None,
            "clinical": item.is_clinical,
            "action_class": classification.action_class,
            "needs_classifying": classification.needs_classifying,
        },
        actor=actor,
    )
    if classification.needs_classifying:
        work_item_report_needs_classifying(work_item=item, actor=actor)
    return item


@transaction.atomic
def work_item_sync_for_document(
    *, document: Document, actor: Any = None
) -> WorkItem | None:
    """A document needing attention has exactly one open item of the right category."""
    # Idempotent: call it after every state change. Opens the item (classified, with
    # its team and due date) when the document enters an attention state, closes it
    # when the document leaves, and replaces it when the kind of problem changes.
    # Items that have ended are never touched: a person's resolution stands. While
    # the document stays rejected its item stays open: clinical rejections are only
    # ever resolved by a person.
    wanted = work_item_category_for(document)
    current = (
        WorkItem.objects.select_for_update()
        .filter(document=document, status__in=ACTIVE_STATUSES)
        .first()
    )
    if current is not None:
        if current.category == wanted:
            return current
        if current.category == WorkItemCategory.CANCEL_AFTER_SENDING and wanted is None:
            # A source's cancel of a sent document waits for a person's decision
            # whatever the practice reports meanwhile.
            return current
        current.document = document
        _close(current, reason=f"Document moved to {document.status}", actor=actor)
    if wanted is None:
        return None
    return _open(document, category=wanted, actor=actor)


CANCEL_AFTER_SENDING_TITLE = "The source system cancelled a document already sent"
CANCEL_AFTER_SENDING_STEPS = [
    "Ask the practice to remove the document from the patient's record (recall), "
    "or record why it may stay.",
    "Close the item with the decision: no further action once recalled or resolved.",
]


@transaction.atomic
def work_item_open_for_cancel_after_sending(
    *, document: Document, actor: Any, trigger: str
) -> tuple[WorkItem, bool]:
    """A source cancelled a document that has already gone: one open item asks a
    person to decide on recall or resolution. Returns ``(item, opened)``; a
    repeated cancel finds the item already open (of any kind) and opens none."""
    locked = Document.objects.select_for_update().get(pk=document.pk)
    current = (
        WorkItem.objects.select_for_update()
        .filter(document=locked, status__in=ACTIVE_STATUSES)
        .first()
    )
    if current is not None:
        return current, False
    now = timezone.now()
    item = WorkItem(
        document=locked,
        sending_organisation_id=locked.sending_organisation_id,
        urgent=locked.urgent,
        category=WorkItemCategory.CANCEL_AFTER_SENDING,
        reason_code=f"SOURCE_{trigger}"[:64],
        reason_title=CANCEL_AFTER_SENDING_TITLE,
        suggested_actions=list(CANCEL_AFTER_SENDING_STEPS),
        is_clinical=True,
        opened_at=now,
        due_at=now + datetime.timedelta(hours=24),
    )
    item._change_reason = f"Source cancelled ({trigger}) after sending"
    item._history_user = history_user(actor)
    item.save()
    audit_record(
        action="work_item.opened",
        target_type="work_item",
        target_id=str(item.public_id),
        data={
            "document": str(locked.public_id),
            "category": item.category,
            "reason_code": item.reason_code,
            "document_status": locked.status,
            "due_at": item.due_at.isoformat(),
            "clinical": True,
        },
        actor=actor,
    )
    return item, True


@transaction.atomic
def work_item_assign(
    *,
    work_item: WorkItem,
    assignee: Any,
    actor: Any,
    reason: str = "",
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """Give an active item to a person who may work it; others' items need assign."""
    # Taking it oneself needs a role that works items; giving it needs assign.
    # Taking or giving away an item someone else holds needs ``holder_confirmed``.
    item, _ = lock(work_item)
    taking = assignee is not None and assignee == actor
    require(
        actor=actor,
        work_item=item,
        permission=(access.ASSIGN, *access.WORKING) if taking else access.ASSIGN,
    )
    require_current(item, expected_version=expected_version)
    require_active(item)
    if assignee is None:
        raise WorkItemInvalid("Choose a person to assign the item to.")
    if item.assignee_id != assignee.pk:
        require_holder_confirmed(item, actor=actor, holder_confirmed=holder_confirmed)
    if not access.can_work(user=assignee, work_item=item):
        raise WorkItemInvalid(
            f"{assignee.get_username()} cannot work this item: their role or "
            "their team and organisation grants do not allow it.",
            code="assignee_not_allowed",
        )
    if item.assignee_id == assignee.pk:
        return item  # a repeated click changes nothing
    previous = item.assignee.get_username() if item.assignee else None
    if item.status == WorkItemStatus.OPEN:
        item.assign(assignee=assignee)
    else:
        item.reassign(assignee=assignee)
    reason = (reason or "").strip()
    save_and_audit(
        item,
        fields=["status", "assignee"],
        action="assigned",
        change_reason=reason or f"Assigned to {assignee.get_username()}",
        actor=actor,
        data={
            "assignee": assignee.get_username(),
            "previous_assignee": previous,
            "reason": reason,
        },
    )
    return item


@transaction.atomic
def work_item_unassign(
    *,
    work_item: WorkItem,
    actor: Any,
    reason: str = "",
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """Back to the team queue: by its assignee, or by someone with assign who
    confirms they know who holds it."""
    item, _ = lock(work_item)
    own = item.assignee_id is not None and item.assignee_id == getattr(actor, "pk", 0)
    require(
        actor=actor,
        work_item=item,
        permission=(access.ASSIGN, *access.WORKING) if own else access.ASSIGN,
    )
    require_current(item, expected_version=expected_version)
    require_active(item)
    if item.status != WorkItemStatus.ASSIGNED:
        raise WorkItemStateError("This work item is not assigned.", code="not_assigned")
    require_holder_confirmed(item, actor=actor, holder_confirmed=holder_confirmed)
    previous = item.assignee.get_username()
    item.unassign()
    reason = (reason or "").strip()
    save_and_audit(
        item,
        fields=["status", "assignee"],
        action="unassigned",
        change_reason=reason or f"Unassigned from {previous}",
        actor=actor,
        data={"previous_assignee": previous, "reason": reason},
    )
    return item


@transaction.atomic
def work_item_reopen(
    *,
    work_item: WorkItem,
    actor: Any,
    reason: str,
    expected_version: int | None = None,
) -> WorkItem:
    """Reopen with a reason: document not in flight, no other open item."""
    # For a document that needs attention or has reached its end (a follow-up);
    # the item is due again by its bucket's rule.
    item, document = lock(work_item)
    require(actor=actor, work_item=item, permission=access.REOPEN)
    require_current(item, expected_version=expected_version)
    reason = required_reason(reason, what="reopen a work item")
    if item.is_active:
        raise WorkItemStateError("This work item is open already.", code="open")
    if (
        WorkItem.objects.filter(document=document, status__in=ACTIVE_STATUSES)
        .exclude(pk=item.pk)
        .exists()
    ):
        raise WorkItemStateError(
            "The document has another open work item; work that one instead.",
            code="another_open",
        )
    if document.status not in ATTENTION_STATES | FINAL_STATES:
        raise DocumentStateError(
            f"The document is {document.get_status_display().lower()} again; wait "
            "for the outcome of that send.",
            code="document_in_flight",
        )
    previous = item.resolution
    now = timezone.now()
    due_at = None
    if item.bucket is not None:
        due_at = now + datetime.timedelta(hours=item.bucket.due_within_hours)
    item.reopen(due_at=due_at)
    save_and_audit(
        item,
        fields=[*ITEM_FIELDS_ON_END, "assignee", "due_at"],
        action="reopened",
        change_reason=reason,
        actor=actor,
        data={"previous_resolution": previous, "reason": reason},
    )
    return item
