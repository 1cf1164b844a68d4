"""What each resolution does to a document in each state, decided before anything
is written. Pure: services follow the plan, selectors use it to offer actions."""

from __future__ import annotations

from dataclasses import dataclass

from casework.errors import DocumentStateError
from casework.models import WorkItemResolution
from docflow.models import FINAL_STATES, Document, DocumentStatus

S = DocumentStatus
R = WorkItemResolution

# Queued by dotted name after commit: casework never imports transmissions.
CONNECT_RESEND_TASK = "transmissions.tasks.resend_document"
SEND_TASK = "transmissions.tasks.send_document"
RESOLVE_AT_CONNECT_TASK = "transmissions.tasks.resolve_rejection_at_connect"

# Connect resends (and reroutes) only what it holds as 4005, 5000 or 7000; an
# undelivered document (4003) is posted again.
_CONNECT_RESENDABLE = frozenset({S.REJECTED, S.SYSTEM_ERROR})
_CANCELLABLE = frozenset({S.SUBMITTED, S.READY, S.HELD, S.SYSTEM_ERROR})


@dataclass(frozen=True)
class DocumentStep:
    """One docflow transition (None: the document is final already), what to queue
    once committed, and whether Connect must mark the rejection resolved (6000)."""

    transition: str | None
    send_task: str | None = None
    resolve_at_connect: bool = False
    # Held documents are posted as they are: their content must fit the destination.
    check_payload: bool = False


def _refused(document: Document, verb: str) -> DocumentStateError:
    if document.status == S.OUTCOME_UNKNOWN:
        return DocumentStateError(
            "The outcome of the last send is still being settled with Connect; "
            "wait for it, because sending again could make a duplicate.",
            code="outcome_unknown",
        )
    return DocumentStateError(
        f"A document that is {document.get_status_display().lower()} cannot be {verb}.",
        code=f"document_{document.status}",
    )


def plan_send_again(document: Document, *, verb: str) -> DocumentStep:
    """Back to ready; Connect resends what it holds, the rest is posted again."""
    if document.status in _CONNECT_RESENDABLE:
        return DocumentStep("requeue", CONNECT_RESEND_TASK)
    if document.status == S.UNDELIVERED:
        return DocumentStep("requeue", SEND_TASK)
    if document.status == S.HELD:
        return DocumentStep("release", SEND_TASK, check_payload=True)
    raise _refused(document, verb)


def plan_close(document: Document, *, verb: str) -> DocumentStep:
    """Held: cancelled (never delivered); at Connect: resolved, a rejection 6000 too."""
    if document.status == S.HELD:
        return DocumentStep("cancel")
    if document.status == S.REJECTED:
        return DocumentStep("resolve_rejection", resolve_at_connect=True)
    if document.status in (S.SYSTEM_ERROR, S.UNDELIVERED):
        return DocumentStep("resolve_rejection")
    if document.status in FINAL_STATES:
        return DocumentStep(None)
    raise _refused(document, verb)


def plan_cancel(document: Document) -> DocumentStep:
    """Cancel: only where the lifecycle lets a document be withdrawn."""
    if document.status in _CANCELLABLE:
        return DocumentStep("cancel")
    raise _refused(document, "cancelled")


def plan_for(resolution: str, document: Document) -> DocumentStep:
    """The plan of one resolution for this document (raises DocumentStateError)."""
    if resolution == R.RESEND:
        return plan_send_again(document, verb="resent")
    if resolution == R.REROUTE:
        return plan_send_again(document, verb="rerouted")
    if resolution == R.DOCUMENT_CANCELLED:
        return plan_cancel(document)
    if resolution in (R.CORRECTED_VERSION, R.OTHER_ROUTE, R.NO_FURTHER_ACTION):
        return plan_close(document, verb="closed")
    raise ValueError(f"{resolution} is not a person's resolution")
