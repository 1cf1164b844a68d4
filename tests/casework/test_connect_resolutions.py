"""Resolutions carried through to Connect: the queued tasks run (by dotted name, as a
worker runs them) against the real Connect simulator."""

from __future__ import annotations

import pytest
from django.utils.module_loading import import_string
from django_q.models import OrmQ

from casework.models import WorkItem, WorkItemStatus
from casework.services import (
    work_item_resolve_corrected_version,
    work_item_resolve_no_further_action,
    work_item_resolve_reroute,
    work_item_resolve_resend,
)
from docflow.models import Document, DocumentStatus
from tests.casework.factories import confirmed, open_item
from tests.samples import pdf_bytes
from tests.transmissions.conftest import simulator  # noqa: F401 (fixture)
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
)
from transmissions.channels.connect import adapter
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import Transmission
from transmissions.pipeline.sending import document_send

S = DocumentStatus


@pytest.fixture
def rejected(simulator, settings, monkeypatch, sending_organisation):  # noqa: F811
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    document = ready_document(sending_organisation, "A81005")  # reject:REJ01
    document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    document.refresh_from_db()
    assert document.status == S.REJECTED
    return document


@pytest.fixture
def run_queued(django_capture_on_commit_callbacks):
    """Run every queued task until none is left, committing between them."""

    def run() -> list[str]:
        ran = []
        while (task := OrmQ.objects.order_by("id").first()) is not None:
            task.delete()
            with django_capture_on_commit_callbacks(execute=True):
                import_string(task.task["func"])(*task.task["args"])
            ran.append(task.task["func"].rsplit(".", 1)[-1])
        return ran

    return run


def follow(sending_organisation, document):
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    document.refresh_from_db()
    return document


def test_resend_unchanged_gets_a_new_guid_linked_to_the_old(
    rejected,
    sending_organisation,
    clinician,
    run_queued,
    django_capture_on_commit_callbacks,
):
    item = open_item(rejected)
    first = Transmission.objects.get(document=rejected)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_resend(
            work_item=item, actor=clinician, reason="Practice says they have them"
        )
    assert run_queued() == ["resend_document"]

    second = Transmission.objects.exclude(pk=first.pk).get(document=rejected)
    assert second.resend_of == first
    assert second.external_id and second.external_id != first.external_id
    # This practice rejects again: a new problem, a new item; the decision stands.
    document = follow(sending_organisation, rejected)
    assert document.status == S.REJECTED
    item.refresh_from_db()
    assert (item.status, item.resolution) == ("resolved", "resend")
    assert open_item(document) != item


def test_reroute_goes_through_connect_to_the_new_practice(
    rejected,
    sending_organisation,
    clinician,
    run_queued,
    django_capture_on_commit_callbacks,
):
    first = Transmission.objects.get(document=rejected)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_reroute(
            work_item=open_item(rejected),
            ods_code="A81001",
            actor=clinician,
            confirmation=confirmed(open_item(rejected), "A81001"),
        )
    assert run_queued() == ["resend_document"]

    second = Transmission.objects.exclude(pk=first.pk).get(document=rejected)
    assert (second.destination_ods_code, second.resend_of) == ("A81001", first)
    document = follow(sending_organisation, rejected)
    assert document.status == S.ACCEPTED
    assert not WorkItem.objects.filter(
        document=document, status__in=["open", "assigned"]
    ).exists()


def test_no_further_action_marks_6000_at_connect_and_the_decision_stands(
    rejected, clinician, run_queued, django_capture_on_commit_callbacks
):
    item = open_item(rejected)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_no_further_action(
            work_item=item, actor=clinician, reason="Patient has emigrated"
        )
    assert run_queued() == ["resolve_rejection_at_connect"]

    rejected.refresh_from_db()
    item.refresh_from_db()
    assert Transmission.objects.get(document=rejected).status_code == 6000
    assert rejected.status == S.REJECTION_RESOLVED
    assert (item.status, item.resolution) == (
        WorkItemStatus.RESOLVED,
        "no_further_action",
    )


def test_a_corrected_version_reaches_connect_flagged_as_a_revision(
    rejected,
    sending_organisation,
    clinician,
    run_queued,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    bodies = []
    real_body = adapter.inbound_document_body

    def spy(document):
        body = real_body(document)
        bodies.append(body)
        return body

    monkeypatch.setattr(adapter, "inbound_document_body", spy)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_corrected_version(
            work_item=open_item(rejected),
            actor=clinician,
            reason="Reissued for the new practice",
            content=pdf_bytes("Corrected discharge summary"),
            changes={"destination_ods_code": "A81001"},
        )
    # Preparing queues the send, or sends from the same worker: either will do.
    assert {"prepare_document", "resolve_rejection_at_connect"} <= set(run_queued())

    replacement = Document.objects.get(replaces=rejected)
    replacement = follow(sending_organisation, replacement)
    rejected.refresh_from_db()
    assert replacement.status == S.ACCEPTED
    assert [body["Revision"] for body in bodies] == [True]
    assert bodies[0]["RecipientOdsCode"] == "A81001"
    assert rejected.status == S.REJECTION_RESOLVED
    assert Transmission.objects.get(document=rejected).status_code == 6000
