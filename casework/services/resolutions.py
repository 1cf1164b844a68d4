"""A person's resolutions of a work item. Each checks the role and the grants, moves
the document through docflow services and ends the item in one transaction (history
row with the user and the reason, one audit event), then queues what must reach
Connect once committed. Nothing here runs by itself: clinical rejections are only
ever resolved by a person choosing one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from casework import access
from casework.errors import (
    DocumentStateError,
    RerouteNotConfirmed,
    RerouteRefused,
    WorkItemInvalid,
)
from casework.models import OtherRouteChannel, WorkItem, WorkItemResolution
from casework.resolution_plans import (
    RESOLVE_AT_CONNECT_TASK,
    DocumentStep,
    plan_cancel,
    plan_close,
    plan_send_again,
)
from casework.services.recording import (
    ITEM_FIELDS_ON_END,
    enqueue_on_commit,
    lock,
    require,
    require_active,
    require_current,
    require_holder_confirmed,
    required_reason,
    save_and_audit,
)
from docflow.corrections import (
    CorrectionRefused,
    destination_for_sending,
    document_correction_submit,
    document_payload_fit_check,
    document_reroute,
)
from docflow.models import Document
from docflow.services import (
    IntakeRefused,
    TransitionRefused,
    document_cancel,
    document_transition,
)
from docflow.validation import normalise_ods_code

R = WorkItemResolution
REFERENCE_MAX_LENGTH = 255


@dataclass(frozen=True)
class RerouteConfirmation:
    """What a person confirmed on the reroute confirmation page: this practice, for
    this version of the item."""

    ods_code: str
    version: int


@dataclass(frozen=True)
class Guard:
    """What the person's page showed: the item's version (None: no page, as for the
    API) and whether they confirmed acting on an item someone else holds."""

    expected_version: int | None = None
    holder_confirmed: bool = False


def _begin(work_item: WorkItem, *, actor: Any, permission: str, guard: Guard):
    item, document = lock(work_item)
    require(actor=actor, work_item=item, permission=permission)
    require_current(item, expected_version=guard.expected_version)
    require_active(item)
    require_holder_confirmed(item, actor=actor, holder_confirmed=guard.holder_confirmed)
    return item, document


def _move(
    document: Document,
    step: DocumentStep,
    *,
    item: WorkItem,
    resolution: str,
    reason: str,
    actor: Any,
    data: dict[str, Any] | None = None,
) -> Document:
    if step.transition is None:
        return document
    label = R(resolution).label
    try:
        return document_transition(
            document=document,
            transition=step.transition,
            actor=actor,
            reason=f"{label}: {reason}" if reason else label,
            data={
                **(data or {}),
                "work_item": str(item.public_id),
                "resolution": resolution,
            },
        )
    except TransitionRefused as refused:
        raise DocumentStateError(str(refused)) from refused


def _end(
    item: WorkItem,
    document: Document,
    *,
    resolution: str,
    reason: str,
    details: dict[str, Any],
    actor: Any,
) -> WorkItem:
    label = R(resolution).label
    now = timezone.now()
    if resolution == R.DOCUMENT_CANCELLED:
        item.cancel(reason=reason, details=details, by=actor, at=now)
        action = "cancelled"
    else:
        item.resolve(
            resolution=resolution, reason=reason, details=details, by=actor, at=now
        )
        action = "resolved"
    item.document = document
    save_and_audit(
        item,
        fields=ITEM_FIELDS_ON_END,
        action=action,
        change_reason=f"{label}: {reason}" if reason else label,
        actor=actor,
        data={
            "resolution": resolution,
            "reason": reason,
            "details": details,
            "document_status": document.status,
        },
    )
    return item


def _resolve_at_connect(step: DocumentStep, document: Document, note: str) -> None:
    # Connect marks only rejections (4005) resolved (6000); it needs our decision.
    if step.resolve_at_connect:
        enqueue_on_commit(RESOLVE_AT_CONNECT_TASK, document.pk, note[:255])


def _connect_note(item: WorkItem, resolution: str) -> str:
    # Free text from staff may name the patient; Connect gets a fixed note.
    return f"{R(resolution).label} in docflow (work item {item.public_id})."


def _destination_still_open(document: Document) -> None:
    try:
        destination_for_sending(ods_code=document.destination_ods_code)
    except CorrectionRefused as refused:
        raise DocumentStateError(
            f"{refused.message} Reroute it or send it by another route.",
            code=refused.code,
        ) from refused


def _sendable_as_it_is(document: Document) -> None:
    try:
        destination = destination_for_sending(ods_code=document.destination_ods_code)
        document_payload_fit_check(document=document, destination=destination)
    except CorrectionRefused as refused:
        raise DocumentStateError(
            f"{refused.message} Reroute it or send a corrected version.",
            code=refused.code,
        ) from refused


@transaction.atomic
def work_item_resolve_resend(
    *,
    work_item: WorkItem,
    actor: Any,
    reason: str = "",
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """Resend unchanged: a Connect resend, or a held document posted as it is."""
    # Connect resends what it holds (a new GUID linked to the old); a held document
    # is released and posted as it is if its destination and content allow. A
    # clinical rejection is resent only with a reason.
    item, document = _begin(
        work_item,
        actor=actor,
        permission=access.RESEND,
        guard=Guard(expected_version, holder_confirmed),
    )
    reason = (reason or "").strip()
    if item.is_clinical:
        reason = required_reason(
            reason, what="resend unchanged what the practice rejected"
        )
    step = plan_send_again(document, verb="resent")
    if step.check_payload:
        _sendable_as_it_is(document)
    else:
        # Connect resends to the same practice: one the directory no longer
        # allows would only fail again.
        _destination_still_open(document)
    document = _move(
        document, step, item=item, resolution=R.RESEND, reason=reason, actor=actor
    )
    _end(
        item,
        document,
        resolution=R.RESEND,
        reason=reason,
        details={"destination": document.destination_ods_code, "task": step.send_task},
        actor=actor,
    )
    enqueue_on_commit(step.send_task, document.pk)
    return item


@transaction.atomic
def work_item_resolve_reroute(
    *,
    work_item: WorkItem,
    ods_code: str,
    actor: Any,
    confirmation: RerouteConfirmation | None = None,
    reason: str = "",
    holder_confirmed: bool = False,
) -> WorkItem:
    """Reroute, once confirmed for this practice and this version of the item, to an
    active directory practice whose profile takes the content."""
    # The new practice must be in the directory, active, with a profile that takes
    # the content as it is; Connect resends to it when Connect holds the document.
    # The confirmation names the practice the person was shown and the version of
    # the item they saw: a different code, or an item changed since, is refused.
    if confirmation is None:
        raise RerouteNotConfirmed(
            "Confirm the practice before rerouting: check its name, ODS code and "
            "status on the confirmation page."
        )
    if normalise_ods_code(confirmation.ods_code) != normalise_ods_code(ods_code):
        raise RerouteNotConfirmed(
            f"You confirmed {normalise_ods_code(confirmation.ods_code)}, not "
            f"{normalise_ods_code(ods_code)}. Confirm the practice again."
        )
    item, document = _begin(
        work_item,
        actor=actor,
        permission=access.DECIDE,
        guard=Guard(confirmation.version, holder_confirmed),
    )
    reason = (reason or "").strip()
    step = plan_send_again(document, verb="rerouted")
    previous = document.destination_ods_code
    try:
        document = document_reroute(
            document=document, ods_code=ods_code, actor=actor, reason=reason
        )
    except CorrectionRefused as refused:
        raise RerouteRefused(refused.message, code=refused.code) from refused
    document = _move(
        document,
        step,
        item=item,
        resolution=R.REROUTE,
        reason=reason,
        actor=actor,
        data={"from": previous, "to": document.destination_ods_code},
    )
    _end(
        item,
        document,
        resolution=R.REROUTE,
        reason=reason,
        details={
            "from": previous,
            "to": document.destination_ods_code,
            "task": step.send_task,
        },
        actor=actor,
    )
    enqueue_on_commit(step.send_task, document.pk)
    return item


@transaction.atomic
def work_item_resolve_corrected_version(
    *,
    work_item: WorkItem,
    actor: Any,
    reason: str = "",
    content: bytes | None = None,
    declared_extension: str = "",
    changes: dict[str, Any] | None = None,
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """A corrected version replaces the document: new payload, Revision, replaces."""
    # The new document (new payload, sent with Revision set) is prepared and sent
    # like any submission; this one is cancelled if it never left, else resolved
    # (a rejection also at Connect).
    item, document = _begin(
        work_item,
        actor=actor,
        permission=access.DECIDE,
        guard=Guard(expected_version, holder_confirmed),
    )
    reason = (reason or "").strip()
    step = plan_close(document, verb="replaced")
    try:
        replacement = document_correction_submit(
            document=document,
            actor=actor,
            reason=reason,
            content=content,
            declared_extension=declared_extension,
            changes=changes,
        )
    except IntakeRefused as refused:
        raise WorkItemInvalid(
            "The corrected details were refused.",
            code="correction_invalid",
            errors=refused.errors,
        ) from refused
    except CorrectionRefused as refused:
        raise WorkItemInvalid(refused.message, code=refused.code) from refused
    details = {
        "replacement": str(replacement.public_id),
        "changed_fields": sorted(changes or {}),
        "new_content": content is not None,
    }
    document = _move(
        document,
        step,
        item=item,
        resolution=R.CORRECTED_VERSION,
        reason=reason,
        actor=actor,
        data={"replaced_by": str(replacement.public_id)},
    )
    _end(
        item,
        document,
        resolution=R.CORRECTED_VERSION,
        reason=reason,
        details=details,
        actor=actor,
    )
    _resolve_at_connect(step, document, _connect_note(item, R.CORRECTED_VERSION))
    return item


@transaction.atomic
def work_item_resolve_other_route(
    *,
    work_item: WorkItem,
    channel: str,
    reference: str,
    actor: Any,
    reason: str = "",
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """Sent by another route: channel and reference recorded; the problem ends."""
    # A rejection is also marked resolved at Connect.
    item, document = _begin(
        work_item,
        actor=actor,
        permission=access.DECIDE,
        guard=Guard(expected_version, holder_confirmed),
    )
    if channel not in OtherRouteChannel.values:
        raise WorkItemInvalid(
            f"Choose how it was sent: {', '.join(OtherRouteChannel.values)}.",
            code="unknown_channel",
        )
    reference = (reference or "").strip()
    if not reference or len(reference) > REFERENCE_MAX_LENGTH:
        raise WorkItemInvalid(
            f"Give a reference of 1 to {REFERENCE_MAX_LENGTH} characters to find "
            "the other send by (tracking number, email reference).",
            code="reference_required",
        )
    reason = (reason or "").strip()
    step = plan_close(document, verb="closed")
    details = {"channel": channel, "reference": reference}
    document = _move(
        document,
        step,
        item=item,
        resolution=R.OTHER_ROUTE,
        reason=reason or f"sent by {OtherRouteChannel(channel).label.lower()}",
        actor=actor,
        data={"channel": channel},
    )
    _end(
        item,
        document,
        resolution=R.OTHER_ROUTE,
        reason=reason,
        details=details,
        actor=actor,
    )
    _resolve_at_connect(step, document, _connect_note(item, R.OTHER_ROUTE))
    return item


@transaction.atomic
def work_item_resolve_no_further_action(
    *,
    work_item: WorkItem,
    actor: Any,
    reason: str,
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """No further action needs a reason; a rejection is also resolved at Connect."""
    item, document = _begin(
        work_item,
        actor=actor,
        permission=access.DECIDE,
        guard=Guard(expected_version, holder_confirmed),
    )
    reason = required_reason(reason, what="close with no further action")
    step = plan_close(document, verb="closed")
    document = _move(
        document,
        step,
        item=item,
        resolution=R.NO_FURTHER_ACTION,
        reason=reason,
        actor=actor,
    )
    _end(
        item,
        document,
        resolution=R.NO_FURTHER_ACTION,
        reason=reason,
        details={},
        actor=actor,
    )
    _resolve_at_connect(step, document, _connect_note(item, R.NO_FURTHER_ACTION))
    return item


@transaction.atomic
def work_item_cancel_document(
    *,
    work_item: WorkItem,
    actor: Any,
    reason: str,
    expected_version: int | None = None,
    holder_confirmed: bool = False,
) -> WorkItem:
    """Cancel the document where its lifecycle allows; a reason is required."""
    # Never once a practice has it; the item ends cancelled.
    item, document = _begin(
        work_item,
        actor=actor,
        permission=access.DECIDE,
        guard=Guard(expected_version, holder_confirmed),
    )
    reason = required_reason(reason, what="cancel the document")
    plan_cancel(document)
    try:
        document = document_cancel(
            document=document, reason=f"Cancelled: {reason}", actor=actor
        )
    except TransitionRefused as refused:
        raise DocumentStateError(str(refused)) from refused
    _end(
        item,
        document,
        resolution=R.DOCUMENT_CANCELLED,
        reason=reason,
        details={},
        actor=actor,
    )
    return item
