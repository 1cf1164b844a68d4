"""The document lifecycle graph is exactly the table in DESIGN §3."""

from __future__ import annotations

import pytest
from django_fsm import TransitionNotAllowed

from docflow.models import FINAL_STATES, Document, DocumentStatus
from tests.factories import submit_document

pytestmark = pytest.mark.django_db

S = DocumentStatus

# DESIGN §3, column "next", copied by hand: the contract the model must honour.
DESIGN_NEXT_STATES: dict[str, set[str]] = {
    S.SUBMITTED: {S.READY, S.HELD, S.CANCELLED},
    S.READY: {S.SENDING, S.HELD, S.CANCELLED},
    S.HELD: {S.READY, S.CANCELLED},
    S.SENDING: {S.RECEIVED, S.READY, S.HELD, S.OUTCOME_UNKNOWN},
    S.OUTCOME_UNKNOWN: {S.RECEIVED, S.READY, S.HELD},
    S.RECEIVED: {S.DELIVERED, S.REJECTED, S.SYSTEM_ERROR, S.ACCEPTED},
    S.DELIVERED: {S.ACCEPTED, S.REJECTED, S.UNDELIVERED, S.SYSTEM_ERROR},
    S.ACCEPTED: set(),
    S.REJECTED: {S.READY, S.REJECTION_RESOLVED},
    S.REJECTION_RESOLVED: set(),
    S.SYSTEM_ERROR: {S.READY, S.REJECTION_RESOLVED, S.CANCELLED},
    S.UNDELIVERED: {S.READY, S.REJECTION_RESOLVED},
    S.CANCELLED: set(),
}
DESIGN_EDGES = {
    (source, target)
    for source, targets in DESIGN_NEXT_STATES.items()
    for target in targets
}
DESIGN_FINAL_STATES = {
    state for state, targets in DESIGN_NEXT_STATES.items() if not targets
}

# Every @transition method on the model, found by inspection so that a new one is
# checked against the table too.
TRANSITION_METHODS = sorted(
    name
    for name in dir(Document)
    if hasattr(getattr(Document, name, None), "_django_fsm")
)


def document_in(state: str) -> Document:
    """A real submitted document, moved to ``state`` behind the FSM's back."""
    document = submit_document()
    Document.objects.filter(pk=document.pk).update(status=state)
    document.refresh_from_db()
    assert document.status == state
    return document


def declared_target(method_name: str, source: str) -> str | None:
    """Where the method's @transition says it goes from ``source`` (None: refused)."""
    meta = getattr(Document, method_name)._django_fsm
    transition = meta.get_transition(source)
    return None if transition is None else transition.target


def test_design_table_covers_every_status_of_the_model():
    assert set(DESIGN_NEXT_STATES) == set(S.values)


def test_the_model_has_transition_methods():
    assert len(TRANSITION_METHODS) >= 10
    assert "cancel" in TRANSITION_METHODS


@pytest.mark.parametrize("method_name", TRANSITION_METHODS)
@pytest.mark.parametrize("state", S.values)
def test_each_transition_from_each_state_moves_to_a_design_target_or_is_refused(
    state, method_name
):
    document = document_in(state)
    method = getattr(document, method_name)
    target = declared_target(method_name, state)

    if target is None:
        with pytest.raises(TransitionNotAllowed):
            method()
        assert document.status == state
    else:
        method()
        assert document.status == target
        assert (state, target) in DESIGN_EDGES


def test_allowed_edges_of_all_methods_are_exactly_the_design_table():
    found = set()
    for state in S.values:
        for method_name in TRANSITION_METHODS:
            document = document_in(state)
            try:
                getattr(document, method_name)()
            except TransitionNotAllowed:
                continue
            found.add((state, document.status))

    assert found - DESIGN_EDGES == set(), "edges the design does not allow"
    assert DESIGN_EDGES - found == set(), "design edges the model cannot take"


@pytest.mark.parametrize("state", S.values)
def test_available_transitions_lead_exactly_to_the_design_next_states(state):
    document = document_in(state)

    targets = {t.target for t in document.get_available_status_transitions()}

    assert targets == DESIGN_NEXT_STATES[state]


def test_final_states_are_the_design_final_states():
    assert set(FINAL_STATES) == DESIGN_FINAL_STATES


@pytest.mark.parametrize("state", sorted(DESIGN_FINAL_STATES))
def test_final_state_has_no_outgoing_transition(state):
    document = document_in(state)

    assert list(document.get_available_status_transitions()) == []
    for method_name in TRANSITION_METHODS:
        with pytest.raises(TransitionNotAllowed):
            getattr(document, method_name)()
    assert document.status == state


def test_status_cannot_be_assigned_directly():
    document = submit_document()

    with pytest.raises(AttributeError, match="Direct status modification"):
        document.status = S.ACCEPTED

    document.refresh_from_db()
    assert document.status == S.SUBMITTED


def test_new_document_starts_submitted_and_not_needing_attention():
    document = submit_document()

    assert document.status == S.SUBMITTED
    assert document.needs_attention is False


@pytest.mark.parametrize(
    "state",
    [S.HELD, S.OUTCOME_UNKNOWN, S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED],
)
def test_attention_states_report_that_they_need_attention(state):
    assert document_in(state).needs_attention is True
