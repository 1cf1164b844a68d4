"""Documents by state and destination kept in the same transaction as every change
(triggers on docflow_document), folded by the watch; and a watch run that reads what
changed lately, not the old documents, while its alerts still fire."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models import Count, F
from django.test.utils import CaptureQueriesContext

from docflow.models import Document, DocumentStatus, PayloadVersion
from docflow.services import document_transition
from operations.counting import (
    document_counts_fold,
    document_counts_rebuild,
    documents_by_destination_kept,
    documents_by_state_kept,
)
from operations.models import DocumentCount, Incident, IncidentKind, IncidentState
from operations.services.health import destinations_watch, unacknowledged_counts
from operations.services.watch import operations_watch_run
from operations.watched import stuck_documents_find
from tests.operations.conftest import T0, document_at

pytestmark = pytest.mark.django_db


def recounted() -> dict[tuple[str, int, str], int]:
    return {
        (row["status"], row["destination_id"] or 0, row["destination_ods_code"]): row[
            "n"
        ]
        for row in Document.objects.order_by()
        .values("status", "destination_id", "destination_ods_code")
        .annotate(n=Count("id"))
    }


def assert_kept_counts_match():
    assert documents_by_destination_kept(DocumentStatus.values) == recounted()
    by_state = Counter()
    for (status, _, _), n in recounted().items():
        by_state[status] += n
    assert documents_by_state_kept() == dict(by_state)


def clone_old(document: Document, copies: int, *, at) -> None:
    """``copies`` more documents like ``document`` in its state since ``at``, written
    in one bulk statement (the triggers count them as they would any insert)."""
    fields = {
        f.attname: getattr(document, f.attname)
        for f in Document._meta.concrete_fields
        if f.attname not in ("id", "public_id", "idempotency_key")
    }
    Document.objects.bulk_create(
        [
            Document(
                **{**fields, "status_changed_at": at},
                idempotency_key=f"clone-{document.pk}-{n}",
            )
            for n in range(copies)
        ]
    )


def test_kept_counts_follow_inserts_edges_bulk_updates_and_deletes(practices):
    first = document_at("ready", at=T0, destination="A81001")
    document_at("submitted", at=T0, destination="A81003")
    document_at("delivered", at=T0, destination="A81001")
    assert_kept_counts_match()

    document_transition(document=first, transition="claim_for_sending")
    assert_kept_counts_match()
    # Behind the services' back: still counted, as the trigger sees every write.
    Document.objects.filter(status=DocumentStatus.DELIVERED).update(
        status=DocumentStatus.ACCEPTED
    )
    Document.objects.filter(pk=first.pk).update(updated_at=F("created_at"))
    assert_kept_counts_match()
    gone = Document.objects.filter(status=DocumentStatus.SUBMITTED)
    PayloadVersion.objects.filter(document__in=gone).delete()
    gone.delete()
    assert_kept_counts_match()
    assert documents_by_state_kept()[DocumentStatus.SENDING] == 1


def test_a_fold_leaves_one_row_per_key_and_the_same_counts(practices):
    for state in ("ready", "received", "delivered"):
        document_at(state, at=T0, destination="A81001")
    before = documents_by_destination_kept(DocumentStatus.values)
    assert DocumentCount.objects.filter(folded=False).count() > len(before)

    read = document_counts_fold()

    assert read > 0
    assert documents_by_destination_kept(DocumentStatus.values) == before
    assert not DocumentCount.objects.filter(folded=False).exists()
    # Keys that sum to zero (states passed through) are gone: one row per key and
    # one total per state left.
    states = {status for status, _, _ in before}
    assert DocumentCount.objects.count() == len(before) + len(states)
    assert document_counts_fold() == 0  # nothing changed since


def test_a_fold_reads_only_the_keys_changed_since_the_last_one(practices):
    old = document_at("delivered", at=T0, destination="A81001")
    clone_old(old, 50, at=T0)
    document_counts_fold()
    document_at("ready", at=T0, destination="A81003")
    appended = DocumentCount.objects.filter(folded=False).count()

    # The rows the ready document appended (its keys are new): nothing of the 51
    # delivered documents.
    read = document_counts_fold()

    assert read == appended
    assert_kept_counts_match()


def test_a_rebuild_counts_every_document_once(practices):
    document_at("received", at=T0, destination="A81001")
    DocumentCount.objects.all().delete()

    document_counts_rebuild()

    assert_kept_counts_match()
    assert not DocumentCount.objects.filter(folded=False).exists()


def test_stuck_and_unacknowledged_counts_are_kept_counts_minus_recent_entries(
    practices,
):
    old = document_at("delivered", at=T0, destination="A81001")
    clone_old(old, 9, at=T0)
    document_at("delivered", at=T0 + timedelta(days=3), destination="A81001")
    now = T0 + timedelta(days=3, hours=1)  # threshold 3 days: 10 over, 1 not

    (stuck,) = stuck_documents_find(now=now)
    assert (stuck.state, stuck.endpoint_type, stuck.count) == (
        "delivered",
        "docman10",
        10,
    )
    assert stuck.oldest_seconds == int((now - T0).total_seconds())
    assert unacknowledged_counts(now=now) == {"A81001": 10}


def docflow_rows_read() -> int:
    """Rows of docflow_document this transaction has read so far (PostgreSQL's
    per-transaction statistics)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_xact_user_tables WHERE relname = 'docflow_document'"
        )
        return cursor.fetchone()[0]


def watch_at(moment):
    with time_machine.travel(moment, tick=False):
        return operations_watch_run()


@pytest.mark.postgres
def test_a_watch_run_reads_what_changed_not_the_unchanged_documents(
    practices, settings
):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    # The destination's alert fires from the first document, in both runs.
    settings.DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD = 1
    # The plans of a large table: on a few rows the planner would rather scan it all.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    old = document_at("delivered", at=T0, destination="A81001")
    received = document_at("received", at=T0, destination="A81001")
    now = T0 + timedelta(days=4)
    watch_at(now)  # opens the incidents and folds the counts

    def one_run():
        with CaptureQueriesContext(connection) as queries:
            before = docflow_rows_read()
            report = watch_at(now)
            return report, docflow_rows_read() - before, len(queries)

    first, rows_small, queries_small = one_run()
    # Four hundred more old, unchanged documents in the watched states.
    clone_old(old, 200, at=T0)
    clone_old(received, 200, at=T0)
    watch_at(now)  # folds the rows the inserts appended
    second, rows_large, queries_large = one_run()

    assert rows_large == rows_small
    assert queries_large == queries_small
    # The alerts still fire, with the documents counted.
    incident = Incident.objects.get(
        kind=IncidentKind.STUCK_DOCUMENTS,
        scope="delivered:docman10",
        state=IncidentState.OPEN,
    )
    assert incident.details["count"] == 201
    assert second.stuck == first.stuck == 2
    assert second.unacknowledged == first.unacknowledged == 1
    assert (
        Incident.objects.get(
            kind=IncidentKind.DESTINATION_UNACKNOWLEDGED, scope="A81001"
        ).details["unacknowledged"]
        == 402
    )


def test_the_watch_query_count_does_not_grow_with_unchanged_documents(
    practices, settings
):
    settings.DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD = 1
    old = document_at("delivered", at=T0, destination="A81001")
    now = T0 + timedelta(days=4)
    watch_at(now)
    with CaptureQueriesContext(connection) as small:
        watch_at(now)
    clone_old(old, 100, at=T0)
    watch_at(now)
    with CaptureQueriesContext(connection) as large:
        watch_at(now)

    assert len(large) == len(small)
    incident = Incident.objects.get(
        kind=IncidentKind.STUCK_DOCUMENTS, scope="delivered:docman10"
    )
    assert incident.details["count"] == 101


@pytest.mark.postgres
def test_refusing_destinations_are_read_without_documents_held_for_other_reasons(
    practices,
):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    refused = document_at("held", at=T0, destination="B99001")
    other = document_at("held", at=T0, destination="B99002")
    Document.objects.filter(pk=refused.pk).update(status_reason="DC03")
    assert other.status == DocumentStatus.HELD and other.status_reason != "DC03"

    def refusing_read():
        with connection.cursor() as cursor:
            # Statistics, as a large table has them (not the empty table's).
            cursor.execute("ANALYZE docflow_document")
        before = docflow_rows_read()
        refusing = destinations_watch(now=T0)["refusing"]
        return refusing, docflow_rows_read() - before

    small, rows_small = refusing_read()
    # Two hundred more documents held, for a reason that is not a refusal.
    clone_old(other, 200, at=T0)
    large, rows_large = refusing_read()

    assert small == large == {"B99001"}
    assert rows_large <= rows_small  # not the 200 held for another reason
    incident = Incident.objects.get(
        kind=IncidentKind.DESTINATION_REFUSING, state=IncidentState.OPEN
    )
    assert (incident.scope, incident.details) == ("B99001", {"held": 1})
