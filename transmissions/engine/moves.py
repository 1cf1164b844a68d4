"""Moving a document, and the work item that follows it: one function for both.

Every transition that transmissions makes goes through ``document_move``, so the
rule that keeps a document's work item in step with its state (casework's
attention rule) is applied in one place. Transitions made in bulk (a page of
statuses) apply the same rule through ``work_item_follow`` once per document.
"""

from __future__ import annotations

from typing import Any

from casework.services import work_item_sync_for_document
from docflow.models import Document
from docflow.services import document_transition


def document_move(
    *,
    document: Document,
    transition: str,
    reason: str = "",
    data: dict | None = None,
    actor: Any = None,
) -> Document:
    """Transition the document (audited, refused with ``TransitionRefused`` when
    its state does not allow it) and bring its work item in line with the new
    state, in the caller's transaction."""
    document = document_transition(
        document=document, transition=transition, reason=reason, data=data, actor=actor
    )
    work_item_follow(document=document, actor=actor)
    return document


def work_item_follow(*, document: Document, actor: Any = None) -> None:
    """Open, update or close the document's work item for the state it is in now
    (after a transition made elsewhere, e.g. in bulk)."""
    work_item_sync_for_document(document=document, actor=actor)
