"""The engine in batches, against the real simulator over HTTP: many documents
prepared, claimed, posted and recorded together end exactly as each would alone."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from casework.models import WorkItem, WorkItemStatus
from docflow.models import Document, DocumentStatus, Organisation
from docflow.preparation import batch
from tests.factories import submit_document
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import Transmission, TransmissionState
from transmissions.pipeline import sending as pipeline_sending
from transmissions.pipeline.sending import SendOutcome, documents_send
from transmissions.pipeline.sweep import documents_prepare_and_send

S = DocumentStatus


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    return simulator


def verified(*codes: str) -> None:
    """Our directory checked these destinations a moment ago (within the TTL)."""
    Organisation.objects.filter(ods_code__in=codes).update(
        last_verified_at=timezone.now()
    )


def prepare_tasks() -> list[int]:
    return sorted(
        row.task["args"][0]
        for row in OrmQ.objects.all()
        if row.task["func"] == "transmissions.tasks.prepare_document"
    )


def waiting(sending_organisation, count: int) -> list[Document]:
    """``count`` documents stored by intake for A81001, waiting to be prepared."""
    return [
        submit_document(
            sending_organisation=sending_organisation, destination_ods_code="A81001"
        )
        for _ in range(count)
    ]


def never_alone(monkeypatch) -> None:
    def refuse(**kwargs):
        raise AssertionError("a batchable document was sent alone")

    monkeypatch.setattr(pipeline_sending, "document_send", refuse)


def history_reasons(document: Document) -> list[str]:
    return list(
        document.history.order_by("history_date", "history_id").values_list(
            "history_change_reason", flat=True
        )
    )


def test_a_batch_is_claimed_posted_and_recorded_together_and_ends_accepted(
    connected, sending_organisation, monkeypatch
):
    documents = [ready_document(sending_organisation, "A81001") for _ in range(6)]
    verified("A81001")
    never_alone(monkeypatch)

    # Claim, post and record for six documents: the statements do not grow with
    # them (alone it was about 30 each); their six blobs are read ahead together
    # (one SELECT with the database payload store, a file read each with the file
    # store).
    with CaptureQueriesContext(connection) as captured:
        results = documents_send(document_ids=[d.pk for d in documents])
    statements = [query["sql"] for query in captured.captured_queries]
    blob_reads = [sql for sql in statements if '"docflow_payloadblob"' in sql]
    assert len(blob_reads) == (1 if settings.DOCFLOW_PAYLOAD_STORE == "database" else 0)
    assert len(statements) <= 30, statements
    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    assert [r.outcome for r in results] == [SendOutcome.POSTED] * 6
    for document in documents:
        document.refresh_from_db()
        assert document.status == S.ACCEPTED
        transmission = Transmission.objects.get(document=document)
        assert transmission.state == TransmissionState.FINAL
        assert transmission.external_id
        assert transmission.attempts == 1
        assert transmission.document_type == document.document_type != ""
        actions = list(
            AuditEvent.objects.filter(target_id=str(document.public_id))
            .order_by("sequence")
            .values_list("action", flat=True)
        )
        assert actions[-6:] == [
            "document.claim_for_sending",
            "transmission.posted",
            "document.mark_received",
            "document.mark_delivered",
            "document.mark_accepted",
            "transmission.final",
        ]
        # One history row per edge, each with its reason, as a save would make it.
        assert history_reasons(document)[-4:] == [
            "claim_for_sending",
            "4002",
            "4003",
            "4010",
        ]
    assert len({t.external_id for t in Transmission.objects.all()}) == 6
    assert simulator_stats(connected)["documents"] == 6
    assert audit_chain_verify().ok


def test_a_status_page_writes_only_the_columns_statuses_change(
    connected, sending_organisation
):
    documents = [ready_document(sending_organisation, "A81001") for _ in range(5)]
    verified("A81001")
    documents_send(document_ids=[d.pk for d in documents])
    posted = dict(Transmission.objects.values_list("pk", "external_id"))
    posted_at = dict(Transmission.objects.values_list("pk", "posted_at"))

    with CaptureQueriesContext(connection) as captured:
        changes_feed_read(sending_organisation_id=sending_organisation.pk)

    updates = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('UPDATE "transmissions_transmission"')
    ]
    # Every row reached the same final state: one UPDATE, no CASE per row, and
    # nothing a status does not change (the GUID, the time of the post).
    assert len(updates) == 1
    assert "CASE" not in updates[0]
    assert '"external_id"' not in updates[0]
    assert '"posted_at"' not in updates[0]
    assert set(Transmission.objects.values_list("state", flat=True)) == {
        TransmissionState.FINAL
    }
    assert dict(Transmission.objects.values_list("pk", "external_id")) == posted
    assert dict(Transmission.objects.values_list("pk", "posted_at")) == posted_at


def test_a_mixed_batch_ends_each_document_as_it_would_alone(
    connected, sending_organisation
):
    accept = ready_document(sending_organisation, "A81001")
    reject = ready_document(sending_organisation, "A81005")
    inactive = ready_document(sending_organisation, "A81006")  # DC02 at Connect
    system_error = ready_document(sending_organisation, "A81008")
    verified("A81001", "A81005", "A81008")  # A81006 is stale: checked live

    results = documents_send(
        document_ids=[accept.pk, reject.pk, inactive.pk, system_error.pk]
    )
    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    outcomes = {r.document_id: r.outcome for r in results}
    assert outcomes[inactive.pk] == SendOutcome.HELD
    assert outcomes[accept.pk] == SendOutcome.POSTED
    for document in (accept, reject, inactive, system_error):
        document.refresh_from_db()
    assert accept.status == S.ACCEPTED
    assert (reject.status, reject.status_reason) == (S.REJECTED, "REJ01")
    assert (inactive.status, inactive.status_reason) == (S.HELD, "DC02")
    assert system_error.status == S.SYSTEM_ERROR
    open_items = dict(
        WorkItem.objects.filter(status=WorkItemStatus.OPEN).values_list(
            "document_id", "category"
        )
    )
    assert open_items == {
        reject.pk: "rejection",
        inactive.pk: "preflight",
        system_error.pk: "system_error",
    }
    assert simulator_stats(connected)["documents"] == 3


def test_a_stale_destination_is_checked_once_for_the_whole_batch(
    connected, sending_organisation, monkeypatch
):
    documents = [ready_document(sending_organisation, "A81001") for _ in range(4)]
    never_alone(monkeypatch)
    before = simulator_stats(connected)

    results = documents_send(document_ids=[d.pk for d in documents])

    assert [r.outcome for r in results] == [SendOutcome.POSTED] * 4
    after = simulator_stats(connected)
    assert after["documents"] == before["documents"] + 4
    assert Organisation.objects.get(ods_code="A81001").last_verified_at is not None


def test_documents_already_claimed_are_not_posted_again(
    connected, sending_organisation
):
    documents = [ready_document(sending_organisation, "A81001") for _ in range(3)]
    verified("A81001")
    ids = [d.pk for d in documents]

    first = documents_send(document_ids=ids)
    second = documents_send(document_ids=ids)

    assert [r.outcome for r in first] == [SendOutcome.POSTED] * 3
    assert [r.outcome for r in second] == [SendOutcome.NOT_READY] * 3
    assert simulator_stats(connected)["documents"] == 3
    assert Transmission.objects.count() == 3


def test_one_task_prepares_and_sends_every_waiting_document(
    connected, sending_organisation
):
    verified("A81001")
    documents = waiting(sending_organisation, 5)
    # Intake queued one task, for the first document; the others found it pending.
    assert prepare_tasks() == [documents[0].pk]

    done = documents_prepare_and_send(document_id=documents[0].pk)
    # A task the dispatch sweep queued for one of them finds nothing left to do.
    again = documents_prepare_and_send(document_id=documents[4].pk)

    assert done.prepared == 5
    assert [r.outcome for r in done.sent] == [SendOutcome.POSTED] * 5
    assert again.prepared == 0 and again.sent == []
    assert set(Document.objects.values_list("status", flat=True)) == {S.RECEIVED}
    assert simulator_stats(connected)["documents"] == 5


def test_a_batch_takes_no_more_than_its_limit(connected, sending_organisation):
    verified("A81001")
    documents = waiting(sending_organisation, 4)

    done = documents_prepare_and_send(document_id=documents[3].pk, limit=2)

    assert done.prepared == 2
    statuses = dict(Document.objects.values_list("pk", "status"))
    # Its own document first, then the oldest waiting.
    assert statuses[documents[3].pk] == S.RECEIVED
    assert statuses[documents[0].pk] == S.RECEIVED
    assert statuses[documents[1].pk] == statuses[documents[2].pk] == S.SUBMITTED


def test_a_full_batch_wakes_a_successor_for_the_documents_it_left(
    connected, sending_organisation
):
    verified("A81001")
    documents = waiting(sending_organisation, 5)
    OrmQ.objects.all().delete()  # the task intake queued is the one run here

    documents_prepare_and_send(document_id=documents[0].pk, limit=2)

    # Three still wait and nobody stores another: a task is queued for them.
    assert prepare_tasks() == [documents[2].pk]
    OrmQ.objects.all().delete()
    documents_prepare_and_send(document_id=documents[2].pk, limit=2)
    assert prepare_tasks() == [documents[4].pk]
    OrmQ.objects.all().delete()

    # The last batch is not full: nothing is left, and nothing is queued.
    last = documents_prepare_and_send(document_id=documents[4].pk, limit=2)
    assert last.prepared == 1
    assert prepare_tasks() == []
    assert set(Document.objects.values_list("status", flat=True)) == {S.RECEIVED}


def test_a_task_whose_document_was_taken_still_prepares_those_waiting(
    connected, sending_organisation
):
    verified("A81001")
    documents = waiting(sending_organisation, 3)
    documents_prepare_and_send(document_id=documents[0].pk, limit=1)

    # Documents 1 and 2 were stored while document 0's task was pending, so they
    # queued none of their own: that task, run again, must take them.
    again = documents_prepare_and_send(document_id=documents[0].pk)

    assert again.prepared == 2
    assert set(Document.objects.values_list("status", flat=True)) == {S.RECEIVED}
    assert simulator_stats(connected)["documents"] == 3


def test_a_document_whose_preparation_breaks_stays_submitted_alone(
    connected, sending_organisation, monkeypatch
):
    verified("A81001")
    documents = waiting(sending_organisation, 3)
    broken = documents[1]
    real_prepare = batch.prepare_document_run

    def prepare(run):
        if run.document.pk == broken.pk:
            raise RuntimeError("converter crashed")
        return real_prepare(run)

    monkeypatch.setattr(batch, "prepare_document_run", prepare)

    done = documents_prepare_and_send(document_id=documents[0].pk)

    assert done.prepared == 2
    assert set(done.failed) == {broken.pk}
    broken.refresh_from_db()
    assert broken.status == S.SUBMITTED
    assert not AuditEvent.objects.filter(
        target_id=str(broken.public_id), action__startswith="document.mark"
    ).exists()
    for document in (documents[0], documents[2]):
        document.refresh_from_db()
        assert document.status == S.RECEIVED

    # The broken document's own task fails (to be retried), after the others went.
    with pytest.raises(RuntimeError, match="converter crashed"):
        documents_prepare_and_send(document_id=broken.pk)
    assert simulator_stats(connected)["documents"] == 2


def test_a_task_lingers_for_company_only_when_fewer_than_a_batch_wait(
    connected, sending_organisation, settings, monkeypatch
):
    from transmissions.pipeline import sweep as pipeline

    verified("A81001")
    settings.DOCFLOW_PREPARE_LINGER_SECONDS = 0.05
    slept: list[float] = []
    monkeypatch.setattr(pipeline.time, "sleep", slept.append)
    documents = waiting(sending_organisation, 3)

    full = documents_prepare_and_send(document_id=documents[0].pk, limit=2)
    assert slept == []  # a whole batch was waiting: no reason to wait
    short = documents_prepare_and_send(document_id=documents[2].pk, limit=2)
    assert slept == [0.05]  # one left: it waited a moment for company
    taken = documents_prepare_and_send(document_id=documents[1].pk, limit=2)
    assert slept == [0.05]  # its document was taken: it returns at once

    assert (full.prepared, short.prepared, taken.prepared) == (2, 1, 0)
