"""Resend through Connect and resolve at Connect, against the real simulator."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from casework.models import WorkItem
from docflow.models import DocumentStatus
from docflow.services import document_transition
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from transmissions.channels.connect.resending import (
    ResolveOutcome,
    rejection_resolve_at_connect,
)
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.engine.controls import connect_failure_record
from transmissions.models import HaltKind, OutboundHalt, Transmission
from transmissions.pipeline.sending import SendOutcome, document_resend, document_send

S = DocumentStatus


@pytest.fixture
def rejected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    document = ready_document(sending_organisation, "A81005")  # reject:REJ01
    document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    document.refresh_from_db()
    assert document.status == S.REJECTED
    return document


def test_resend_makes_a_new_transmission_linked_to_the_old_guid(
    rejected, sending_organisation, simulator
):
    first = Transmission.objects.get(document=rejected)
    document_transition(document=rejected, transition="requeue", reason="resend")

    result = document_resend(document_id=rejected.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    second = Transmission.objects.exclude(pk=first.pk).get(document=rejected)
    assert result.outcome == SendOutcome.POSTED
    assert second.resend_of == first
    # Each send carries the document's type (the surge watch counts by it).
    assert first.document_type == second.document_type == rejected.document_type
    assert rejected.document_type != ""
    assert second.external_id == result.detail != first.external_id
    assert second.idempotency_key != first.idempotency_key
    event = AuditEvent.objects.get(action="transmission.resend_requested")
    assert (event.data["resend_of"], event.data["guid"]) == (
        first.external_id,
        second.external_id,
    )
    rejected.refresh_from_db()
    assert rejected.status == S.REJECTED  # the practice rejects it again
    assert simulator_stats(simulator)["documents"] == 2


def test_resend_runs_once_even_if_queued_twice(rejected, simulator):
    document_transition(document=rejected, transition="requeue", reason="resend")

    outcomes = [document_resend(document_id=rejected.pk).outcome for _ in range(2)]

    assert outcomes == [SendOutcome.POSTED, SendOutcome.NOT_READY]
    assert simulator_stats(simulator)["documents"] == 2


def test_resolving_at_connect_mirrors_6000_and_closes_the_work_item(rejected):
    outcome = rejection_resolve_at_connect(
        document_id=rejected.pk, note="Patient moved practice; letter posted."
    )

    rejected.refresh_from_db()
    assert outcome == ResolveOutcome.RESOLVED
    assert rejected.status == S.REJECTION_RESOLVED
    assert Transmission.objects.get(document=rejected).status_code == 6000
    assert list(WorkItem.objects.values_list("category", "status")) == [
        ("rejection", "closed")
    ]
    assert (
        AuditEvent.objects.filter(action="transmission.rejection_resolved").count() == 1
    )


def test_only_rejected_or_errored_documents_can_be_resolved(
    simulator, settings, monkeypatch, sending_organisation
):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    document = ready_document(sending_organisation, "A81001")

    outcome = rejection_resolve_at_connect(document_id=document.pk, note="n/a")

    assert outcome == ResolveOutcome.NOT_RESOLVABLE
    assert not AuditEvent.objects.filter(
        action="transmission.rejection_resolved"
    ).exists()


def test_a_rejection_resolved_here_is_also_resolved_at_connect(rejected):
    document_transition(
        document=rejected, transition="resolve_rejection", reason="no further action"
    )

    outcome = rejection_resolve_at_connect(document_id=rejected.pk, note="Closed.")

    rejected.refresh_from_db()
    assert outcome == ResolveOutcome.RESOLVED
    assert rejected.status == S.REJECTION_RESOLVED
    assert Transmission.objects.get(document=rejected).status_code == 6000


def test_a_resend_waits_while_its_destinations_circuit_is_open_and_no_other(
    rejected, sending_organisation, settings, simulator
):
    for _ in range(settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD):
        connect_failure_record(
            sending_organisation=sending_organisation,
            error="503",
            destination_ods_code="A81005",
        )
    document_transition(document=rejected, transition="requeue", reason="resend")

    halted = document_resend(document_id=rejected.pk)

    assert (halted.outcome, halted.detail) == (
        SendOutcome.HALTED,
        HaltKind.CIRCUIT_OPEN,
    )
    OutboundHalt.objects.filter(kind=HaltKind.CIRCUIT_OPEN).update(
        destination_ods_code="A81001"
    )
    assert document_resend(document_id=rejected.pk).outcome == SendOutcome.POSTED
    assert simulator_stats(simulator)["documents"] == 2
