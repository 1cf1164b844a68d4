"""The queue's kept counts: every change of an item moves it between keys in the
item's own transaction, so the counts per bucket equal a recount of the items
through assign, unassign, resolve, reopen, reclassification, the day an item falls
due, compaction, a repair after a bulk write, and concurrent writers."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection, connections

from casework.counting import (
    work_item_counts_compact,
    work_item_counts_rebuild,
)
from casework.models import WorkItem, WorkItemCount
from casework.selectors import WorkItemFilters, work_item_bucket_counts
from casework.services import (
    work_item_assign,
    work_item_reopen,
    work_item_resolve_no_further_action,
    work_item_sync_for_document,
    work_item_unassign,
)
from docflow.services import document_transition
from tests.casework.factories import document_in, open_item
from tests.factories import UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
# A filter that changes nothing but makes the selector count the items one by one.
RECOUNT = WorkItemFilters(opened_before=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


def kept(user) -> dict:
    """Active and overdue per bucket, as the queue reads them (the kept counts)."""
    return {
        count.key: (count.active, count.overdue)
        for count in work_item_bucket_counts(user=user)
    }


def recounted(user) -> dict:
    """The same, counted from the items themselves."""
    return {
        count.key: (count.active, count.overdue)
        for count in work_item_bucket_counts(user=user, filters=RECOUNT)
    }


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True, password=None)


@pytest.fixture
def items(sending_organisation, practices):
    made = []
    for hour, (state, reason) in enumerate(
        [("rejected", "REJ01"), ("rejected", "REJ02"), ("system_error", "5000")]
    ):
        with time_machine.travel(START + dt.timedelta(hours=hour), tick=False):
            made.append(
                open_item(
                    document_in(
                        state, sending_organisation=sending_organisation, reason=reason
                    )
                )
            )
    return made


def test_kept_counts_equal_a_recount_through_assign_unassign_resolve_and_reopen(
    items, admin, clinician, colleague
):
    with time_machine.travel(START + dt.timedelta(hours=5), tick=False):
        before = kept(admin)
        assert before == recounted(admin)
        assert sum(active for active, _ in before.values()) == 3

        work_item_assign(work_item=items[0], assignee=colleague, actor=clinician)
        assert kept(admin) == recounted(admin) == before  # assigning moves no key

        work_item_unassign(work_item=items[0], actor=clinician, holder_confirmed=True)
        resolved = work_item_resolve_no_further_action(
            work_item=items[1], reason="Patient seen in clinic", actor=clinician
        )
        after_resolve = kept(admin)
        assert after_resolve == recounted(admin)
        assert sum(active for active, _ in after_resolve.values()) == 2

        work_item_reopen(
            work_item=resolved, reason="GP asked for the letter", actor=admin
        )
        assert kept(admin) == recounted(admin)
        assert sum(active for active, _ in kept(admin).values()) == 3


def test_an_item_reclassified_by_its_documents_move_changes_bucket_in_the_counts(
    sending_organisation, practices, admin
):
    document = document_in("outcome_unknown", sending_organisation=sending_organisation)
    first = open_item(document)
    before = kept(admin)

    document = document_transition(
        document=document, transition="hold_after_send_attempt", reason="DC02"
    )
    work_item_sync_for_document(document=document)
    second = open_item(document)

    assert second.pk != first.pk and second.bucket_id != first.bucket_id
    after = kept(admin)
    assert after == recounted(admin)
    assert after != before
    assert sum(active for active, _ in after.values()) == 1


def test_an_item_counts_as_overdue_from_the_moment_it_falls_due_that_day(
    sending_organisation, practices, admin
):
    with time_machine.travel(START, tick=False):
        item = open_item(
            document_in("rejected", sending_organisation=sending_organisation)
        )
    due = item.due_at
    assert due is not None
    for moment, overdue in [
        (due - dt.timedelta(minutes=1), 0),
        (due + dt.timedelta(minutes=1), 1),  # the same day: read from the items
        (due + dt.timedelta(days=2), 1),  # a past day: read from the counts
    ]:
        with time_machine.travel(moment, tick=False):
            counts = kept(admin)
            assert counts == recounted(admin), moment
            assert sum(late for _, late in counts.values()) == overdue, moment


def test_compaction_folds_the_changes_into_one_row_per_key_and_keeps_the_counts(
    items, admin, clinician
):
    for item in items[:2]:
        work_item_assign(work_item=item, assignee=clinician, actor=clinician)
    work_item_resolve_no_further_action(
        work_item=items[2], reason="Duplicate of another letter", actor=admin
    )
    before = kept(admin)
    appended = WorkItemCount.objects.count()

    folded = work_item_counts_compact()

    assert folded == appended
    keys = list(
        WorkItemCount.objects.values_list(
            "bucket_id", "team_id", "sending_organisation_id", "due_on"
        )
    )
    assert len(keys) == len(set(keys)) < appended
    assert not WorkItemCount.objects.filter(delta=0).exists()
    assert kept(admin) == before == recounted(admin)


def test_a_bulk_update_bypasses_the_counts_until_they_are_rebuilt(items, admin):
    # QuerySet.update() saves no instance (as a bulk load does not): the counts stay
    # where they were, and the rebuild puts them right.
    WorkItem.objects.filter(pk=items[0].pk).update(status="closed", resolution="x")
    assert kept(admin) != recounted(admin)

    work_item_counts_rebuild()

    assert kept(admin) == recounted(admin)
    assert sum(active for active, _ in kept(admin).values()) == 2


def test_counts_narrowed_by_grants_match_the_items_each_person_sees(
    items, clinician, operator
):
    for person in (clinician, operator):
        assert kept(person) == recounted(person), person.username
    assert sum(active for active, _ in kept(clinician).values()) == 2
    assert sum(active for active, _ in kept(operator).values()) == 1


def test_the_queue_counts_read_the_kept_rows_not_every_item(
    items, admin, django_assert_max_num_queries
):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        work_item_bucket_counts(user=admin)
    summed = [q["sql"] for q in captured if "casework_workitemcount" in q["sql"]]
    assert len(summed) == 1 and "SUM(" in summed[0]
    # The only read of the items is today's due ones (bounded by the due index).
    (items_read,) = [q["sql"] for q in captured if '"casework_workitem"' in q["sql"]]
    assert "due_at" in items_read


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_on_the_same_keys_neither_wait_nor_lose_a_change(
    request, reference_data
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    sending_organisation = request.getfixturevalue("sending_organisation")
    request.getfixturevalue("practices")
    admin = UserFactory(is_superuser=True, password=None)
    items = [
        open_item(document_in("rejected", sending_organisation=sending_organisation))
        for _ in range(8)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(chunk: list[WorkItem]) -> None:
        try:
            barrier.wait(timeout=30)
            for item in chunk:
                work_item_resolve_no_further_action(
                    work_item=item, reason="Seen in clinic", actor=admin
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(items[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert kept(admin) == recounted(admin)
    assert sum(active for active, _ in kept(admin).values()) == 0
    work_item_counts_compact()
    assert not WorkItemCount.objects.exists()
