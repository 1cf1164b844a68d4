"""What decides whether and when a document is sent: the outcomes of a send, the
checks made before claiming (``document_not_sendable_now``: ready, no halt of its
organisation nor open circuit of its destination, no pause), and the backoff
between attempts (exponential, full jitter, never sooner than Retry-After)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.conf import settings

from docflow.models import Document, DocumentStatus
from transmissions.engine.controls import outbound_blocking_halt


class SendOutcome:
    POSTED = "posted"
    RETRY = "retry"
    HELD = "held"
    OUTCOME_UNKNOWN = "outcome_unknown"
    HALTED = "halted"
    NOT_READY = "not_ready"
    NOT_DUE = "not_due"
    QUEUED = "queued"  # to be sent by a task of its own


@dataclass(frozen=True)
class SendResult:
    outcome: str
    document_id: int
    detail: str = ""


def is_split_parent(document: Document) -> bool:
    """A split parent is never sent: its parts are."""
    return document.part_count is not None and document.part_number is None


def send_retry_ceiling(*, attempts: int) -> float:
    """The longest wait before attempt ``attempts + 1``: the base doubled per
    attempt made, capped at DOCFLOW_SEND_RETRY_MAX_SECONDS."""
    return float(
        min(
            settings.DOCFLOW_SEND_RETRY_MAX_SECONDS,
            settings.DOCFLOW_SEND_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0)),
        )
    )


def send_retry_delay(*, attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter (uniform between 0 and the ceiling, so
    retries after a common fault spread over the whole window), never sooner than
    Connect's Retry-After."""
    ceiling = send_retry_ceiling(attempts=attempts)
    delay = random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not secrecy
    return max(delay, retry_after or 0.0)


def document_not_sendable_now(document: Document, *, halts: list) -> SendResult | None:
    """Why this document is not sent now, or None: not ready (or a split parent,
    whose parts are sent), a halt on its organisation, an open circuit for its
    destination or a pause of its destination (``halts``: the open halts covering
    its organisation, everyone's included). A halted or paused document waits in
    ready until it is lifted."""
    if document.status != DocumentStatus.READY or is_split_parent(document):
        return SendResult(SendOutcome.NOT_READY, document.pk)
    halt = outbound_blocking_halt(
        sending_organisation_id=document.sending_organisation_id,
        destination_ods_code=document.destination_ods_code,
        halts=halts,
    )
    if halt is not None:
        return SendResult(SendOutcome.HALTED, document.pk, halt.kind)
    return None
