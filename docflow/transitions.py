"""Lifecycle edges for many documents at once, written in a handful of statements:
what batches in preparation, sending and tracking use, and what
``docflow.services.document_transition`` uses for one."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from django.utils import timezone
from django_fsm import can_proceed
from simple_history.models import HistoricalRecords

from audit.services import EventSpec, audit_record_many
from docflow.errors import TransitionConflict, TransitionRefused
from docflow.models import Document


def _history_user_of_request() -> Any:
    """Who simple-history would name for a save in this request: the signed-in
    user, or nobody (tasks, commands)."""
    user = getattr(getattr(HistoricalRecords.context, "request", None), "user", None)
    return user if getattr(user, "is_authenticated", False) else None


class DocumentTransitions:
    """Lifecycle edges for many documents, applied on their locked rows in memory
    and written together: one UPDATE per resulting (state, reason), one INSERT of
    history rows (one per edge, as a save would have made it) and the audit events
    chained in one go. The statements per edge fall from eight to about one, which
    is what lets the engine move documents in batches.

    Use inside a transaction: ``lock`` the rows, ``apply`` edges (refusals raise
    :class:`TransitionRefused` before anything is written), queue further events
    with ``audit`` in the order they happened, then ``flush``.
    """

    def __init__(self) -> None:
        self.now = timezone.now()
        self._initial: dict[int, str] = {}
        self._changed: dict[int, Document] = {}
        self._destinations: dict[int, int | None] = {}
        self._history: list[Document] = []
        self._events: list[EventSpec] = []

    @staticmethod
    def lock(document_ids) -> dict[int, Document]:
        """Lock these documents (in id order, as every batch does) and read them."""
        return {
            document.pk: document
            for document in Document.objects.select_for_update(of=("self",))
            .filter(pk__in=list(document_ids))
            .order_by("pk")
        }

    @staticmethod
    def refusal(document: Document, transition: str) -> str | None:
        """Why ``transition`` cannot be taken from the document's state, or None."""
        method = getattr(document, transition, None)
        if method is None or not hasattr(method, "_django_fsm"):
            return f"{transition} is not a document transition"
        if not can_proceed(method):
            return (
                f"A document that is {document.status} cannot "
                f"{transition.replace('_', ' ')}."
            )
        return None

    def apply(
        self,
        document: Document,
        transition: str,
        *,
        actor: Any = None,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> Document:
        """Take one edge on a locked document, in memory; written by ``flush``."""
        refused = self.refusal(document, transition)
        if refused:
            raise TransitionRefused(refused)
        previous = document.status
        self._initial.setdefault(document.pk, previous)
        getattr(document, transition)()
        document.status_changed_at = self.now
        document.status_reason = reason[:255]
        document.updated_at = self.now
        self._changed[document.pk] = document
        snapshot = copy.copy(document)
        snapshot._change_reason = reason or transition
        snapshot._history_date = timezone.now()
        self._history.append(snapshot)
        self.audit(
            action=f"document.{transition}",
            target_type="document",
            target_id=str(document.public_id),
            # Caller data first, so it can never overwrite the recorded edge.
            data={
                **(data or {}),
                "from": previous,
                "to": document.status,
                "reason": reason,
            },
            actor=actor,
        )
        return document

    def audit(
        self,
        *,
        action: str,
        target_type: str,
        target_id: str,
        data: dict[str, Any] | None = None,
        actor: Any = None,
    ) -> None:
        """Queue an event to chain with the edges, after those applied so far."""
        self._events.append(EventSpec(action, target_type, str(target_id), data, actor))

    def set_destination(self, document: Document, destination) -> None:
        """Record the resolved destination with the document's next edge (its
        history row shows it); written by ``flush``."""
        document.destination = destination
        self._destinations[document.pk] = destination.pk if destination else None

    def forget(self, document: Document) -> None:
        """Drop what was queued for one document (its work was rolled back)."""
        target = str(document.public_id)
        self._initial.pop(document.pk, None)
        self._changed.pop(document.pk, None)
        self._destinations.pop(document.pk, None)
        self._history = [h for h in self._history if h.pk != document.pk]
        self._events = [e for e in self._events if e.target_id != target]

    def flush(self) -> None:
        """Write every edge applied and event queued since the last flush. Each
        UPDATE is conditional on the state the documents were read in: a row that
        moved meanwhile (a stale read) fails the whole change, nothing half done."""
        unset = object()
        groups: dict[tuple, list[int]] = defaultdict(list)
        for document in self._changed.values():
            key = (
                self._initial[document.pk],
                document.status,
                document.status_reason,
                self._destinations.pop(document.pk, unset),
            )
            groups[key].append(document.pk)
        for (initial, status, reason, destination_id), pks in groups.items():
            also = {} if destination_id is unset else {"destination_id": destination_id}
            updated = Document.objects.filter(pk__in=pks, status=initial).update(
                status=status,
                status_changed_at=self.now,
                status_reason=reason,
                updated_at=self.now,
                **also,
            )
            if updated != len(pks):
                raise TransitionConflict(
                    f"{len(pks) - updated} of {len(pks)} documents were no longer "
                    f"{initial}; nothing was changed."
                )
        if self._history:
            Document.history.bulk_history_create(
                self._history, update=True, default_user=_history_user_of_request()
            )
        audit_record_many(self._events)
        for pk, destination_id in self._destinations.items():
            # Resolved without an edge to carry it (none so far in this batch).
            Document.objects.filter(pk=pk).update(
                destination_id=destination_id, updated_at=self.now
            )
        self._initial, self._changed, self._history, self._events = {}, {}, [], []
        self._destinations = {}
