"""Lifecycle edges for many documents at once (``DocumentTransitions``) and events
chained in one go (``audit_record_many``): the same rows as one at a time, fewer
statements, and never half applied."""

from __future__ import annotations

import itertools

import pytest
from django.db import transaction

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import EventSpec, audit_record, audit_record_many
from docflow.models import Document, DocumentStatus
from docflow.services import TransitionRefused, document_transition
from docflow.transitions import DocumentTransitions, TransitionConflict
from tests.factories import UserFactory, submit_document

pytestmark = pytest.mark.django_db
S = DocumentStatus


def edges(document: Document) -> list[tuple[str, str, str]]:
    return [
        (e.action, e.data["from"], e.data["to"])
        for e in AuditEvent.objects.filter(
            target_id=str(document.public_id), action__startswith="document."
        )
        .exclude(action="document.submitted")
        .order_by("sequence")
    ]


def test_many_documents_many_edges_each_audited_and_in_history():
    documents = [submit_document() for _ in range(3)]
    user = UserFactory()

    with transaction.atomic():
        batch = DocumentTransitions()
        locked = batch.lock([d.pk for d in documents])
        for document in locked.values():
            batch.apply(document, "mark_prepared", reason="ready as submitted")
            batch.apply(document, "claim_for_sending", actor=user)
        batch.audit(action="batch.note", target_type="batch", target_id="1")
        batch.flush()

    for document in documents:
        document.refresh_from_db()
        assert document.status == S.SENDING
        assert document.status_reason == ""
        assert edges(document) == [
            ("document.mark_prepared", S.SUBMITTED, S.READY),
            ("document.claim_for_sending", S.READY, S.SENDING),
        ]
        history = list(
            document.history.order_by("history_date", "history_id").values_list(
                "status", "history_change_reason"
            )
        )
        assert history[-2:] == [
            (S.READY, "ready as submitted"),
            (S.SENDING, "claim_for_sending"),
        ]
    claim = AuditEvent.objects.filter(action="document.claim_for_sending").first()
    assert (claim.actor_kind, claim.actor_id) == ("user", str(user.pk))
    last = AuditEvent.objects.order_by("-sequence").first()
    assert last.action == "batch.note"  # queued after the edges, chained after them
    assert audit_chain_verify().ok


def test_the_batch_writes_the_same_event_as_one_transition_alone():
    alone, batched = submit_document(), submit_document()
    document_transition(
        document=alone, transition="hold_before_send", reason="DEST_UNKNOWN"
    )
    with transaction.atomic():
        batch = DocumentTransitions()
        locked = batch.lock([batched.pk])[batched.pk]
        batch.apply(locked, "hold_before_send", reason="DEST_UNKNOWN")
        batch.flush()

    first, second = (
        AuditEvent.objects.get(
            action="document.hold_before_send", target_id=str(d.public_id)
        )
        for d in (alone, batched)
    )
    assert first.data == second.data
    assert (first.actor_kind, first.action) == (second.actor_kind, second.action)


def test_a_refused_edge_raises_before_anything_is_written():
    document = submit_document()
    events = AuditEvent.objects.count()

    with transaction.atomic():
        batch = DocumentTransitions()
        locked = batch.lock([document.pk])[document.pk]
        with pytest.raises(TransitionRefused, match="cannot mark accepted"):
            batch.apply(locked, "mark_accepted")
        batch.flush()

    document.refresh_from_db()
    assert document.status == S.SUBMITTED
    assert AuditEvent.objects.count() == events


def test_a_document_changed_after_it_was_read_fails_the_whole_batch():
    moved_meanwhile, other = submit_document(), submit_document()

    with pytest.raises(TransitionConflict), transaction.atomic():
        batch = DocumentTransitions()
        stale = {
            d.pk: d
            for d in Document.objects.filter(pk__in=[moved_meanwhile.pk, other.pk])
        }
        for document in stale.values():
            batch.apply(document, "mark_prepared")
        # Someone else took it on meanwhile (a read without the batch's lock).
        Document.objects.filter(pk=moved_meanwhile.pk).update(status=S.HELD)
        batch.flush()

    other.refresh_from_db()
    assert other.status == S.SUBMITTED
    assert not AuditEvent.objects.filter(action="document.mark_prepared").exists()


def test_a_forgotten_document_leaves_nothing_behind():
    kept, dropped = submit_document(), submit_document()

    with transaction.atomic():
        batch = DocumentTransitions()
        locked = batch.lock([kept.pk, dropped.pk])
        for document in locked.values():
            batch.apply(document, "mark_prepared")
        batch.forget(locked[dropped.pk])
        batch.flush()

    kept.refresh_from_db()
    dropped.refresh_from_db()
    assert (kept.status, dropped.status) == (S.READY, S.SUBMITTED)
    assert edges(dropped) == []


def test_events_chained_together_verify_and_keep_their_order():
    audit_record(action="before", target_type="t", target_id="0")

    events = audit_record_many(
        [EventSpec(f"step.{n}", "t", str(n), {"n": n}) for n in range(1, 6)]
    )

    assert [e.action for e in events] == [f"step.{n}" for n in range(1, 6)]
    sequences = [e.sequence for e in events]
    assert sequences == list(range(sequences[0], sequences[0] + 5))
    stored = list(AuditEvent.objects.order_by("sequence"))
    for previous, event in itertools.pairwise(stored):
        assert event.prev_hash == previous.hash
    assert audit_chain_verify().ok
    assert audit_record_many([]) == []
