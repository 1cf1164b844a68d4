"""A source system's corrected version: ``document_replacement_submit``."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from docflow.corrections import CorrectionRefused, document_replacement_submit
from docflow.models import Document, DocumentStatus
from docflow.services import IdempotencyConflict, document_transition
from tests.factories import SendingOrganisationFactory, make_submission, submit_document

pytestmark = pytest.mark.django_db

S = DocumentStatus


def replace(old, organisation, key="v2", **overrides):
    return document_replacement_submit(
        replaced=old,
        sending_organisation=organisation,
        source_system="test",
        idempotency_key=key,
        submission=make_submission(description="Corrected", **overrides),
    )


def test_replacement_links_and_cancels_an_unsent_original_in_one_go(
    sending_organisation,
):
    old = submit_document(sending_organisation=sending_organisation)

    new, created = replace(old, sending_organisation)

    old.refresh_from_db()
    assert created and new.replaces == old
    assert old.status == S.CANCELLED
    cancel = AuditEvent.objects.get(
        action="document.cancel", target_id=str(old.public_id)
    )
    assert cancel.data["replaced_by"] == str(new.public_id)


def test_a_held_original_keeps_its_work_to_a_person(sending_organisation):
    old = submit_document(sending_organisation=sending_organisation)
    document_transition(
        document=old, transition="hold_before_send", reason="unknown_destination"
    )

    new, _ = replace(old, sending_organisation)

    old.refresh_from_db()
    assert new.replaces == old
    assert old.status == S.HELD


def test_another_organisations_document_cannot_be_replaced(sending_organisation):
    theirs = submit_document(sending_organisation=SendingOrganisationFactory())

    with pytest.raises(CorrectionRefused) as refused:
        replace(theirs, sending_organisation)

    assert refused.value.code == "not_found"
    assert Document.objects.count() == 1


def test_a_replay_names_the_same_replaced_document_or_conflicts(sending_organisation):
    first = submit_document(sending_organisation=sending_organisation)
    second = submit_document(sending_organisation=sending_organisation)
    new, _ = replace(first, sending_organisation)

    again, created = replace(first, sending_organisation)
    assert (again, created) == (new, False)
    with pytest.raises(IdempotencyConflict):
        replace(second, sending_organisation)
    assert Document.objects.count() == 3
