"""The work queue's orders: urgent first, then overdue, then oldest by default;
oldest, newest and due soonest on request. Keyset pages for each order list every
item once, in order, in a fixed number of statements."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casework.queue_order import DUE, NEWEST, OLDEST, PRIORITY, QueuePosition
from casework.selectors import (
    WorkItemFilters,
    work_item_assignee_candidates,
    work_item_buckets,
    work_queue_page,
)
from casework.services import work_item_assign
from tests.casework.factories import (
    CLINICAL_ADMIN,
    IG_OFFICER,
    INTEGRATION_OPERATOR,
    document_in,
    open_item,
    staff,
)
from tests.factories import SendingOrganisationFactory, UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
# Clinical rejections are due 24 hours after they open (the seeded bucket rule).
DUE_WITHIN = dt.timedelta(hours=24)
NOW = START + dt.timedelta(hours=30)


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True, password=None)


@pytest.fixture
def mixed(sending_organisation, practices):
    """Rejections opened an hour apart; at NOW those opened in the first six hours
    are overdue. Urgent: hours 1 and 8 (overdue, not overdue)."""
    made = {}
    for hour in [0, 1, 2, 7, 8, 9]:
        with time_machine.travel(START + dt.timedelta(hours=hour), tick=False):
            document = document_in(
                "rejected",
                sending_organisation=sending_organisation,
                reason="REJ01",
                urgent=hour in (1, 8),
            )
        made[hour] = open_item(document)
    return made


def every_page(user, *, sort, size, filters=None):
    """Follow the keyset from the first page to the last; the pages' items."""
    pages, after = [], None
    while True:
        page = work_queue_page(
            user=user,
            filters=filters or WorkItemFilters(),
            size=size,
            sort=sort,
            after=after,
            now=NOW,
        )
        pages.append(page.items)
        if not page.more:
            return pages
        after = page.next_position
        assert after is not None


def flat(pages):
    return [item for page in pages for item in page]


def test_an_item_copies_its_documents_urgent_flag_when_it_opens(mixed):
    assert [hour for hour, item in mixed.items() if item.urgent] == [1, 8]


def test_the_default_order_is_urgent_then_overdue_then_oldest(admin, mixed):
    page = work_queue_page(user=admin, filters=WorkItemFilters(), size=10, now=NOW)

    assert page.items == [mixed[h] for h in (1, 8, 0, 2, 7, 9)]
    assert not page.more


@pytest.mark.parametrize(
    ("sort", "hours"),
    [
        (PRIORITY, (1, 8, 0, 2, 7, 9)),
        (OLDEST, (0, 1, 2, 7, 8, 9)),
        (NEWEST, (9, 8, 7, 2, 1, 0)),
        (DUE, (0, 1, 2, 7, 8, 9)),
    ],
)
@pytest.mark.parametrize("size", [1, 2, 4])
def test_keyset_pages_of_every_order_list_each_item_once_in_order(
    admin, mixed, sort, hours, size
):
    pages = every_page(admin, sort=sort, size=size)

    assert flat(pages) == [mixed[h] for h in hours]
    assert all(len(page) == size for page in pages[:-1])


def test_items_with_no_due_date_come_last_when_due_soonest(admin, mixed):
    mixed[0].due_at = None
    mixed[0].save(update_fields=["due_at"])

    pages = every_page(admin, sort=DUE, size=2)

    assert flat(pages) == [mixed[h] for h in (1, 2, 7, 8, 9, 0)]


def test_overdue_is_decided_when_the_first_page_was_read(admin, mixed):
    first = work_queue_page(user=admin, filters=WorkItemFilters(), size=3, now=NOW)
    # Two hours later hour 7's item is overdue too; the next page still follows
    # the order of the first, so nothing repeats and nothing is skipped.
    later = work_queue_page(
        user=admin,
        filters=WorkItemFilters(),
        size=3,
        after=first.next_position,
        now=NOW + dt.timedelta(hours=2),
    )

    assert first.items + later.items == [mixed[h] for h in (1, 8, 0, 2, 7, 9)]


def test_a_position_of_another_order_starts_at_the_first_page(admin, mixed):
    oldest = work_queue_page(
        user=admin, filters=WorkItemFilters(), size=2, sort=OLDEST, now=NOW
    )

    newest = work_queue_page(
        user=admin,
        filters=WorkItemFilters(),
        size=2,
        sort=NEWEST,
        after=oldest.next_position,
        now=NOW,
    )

    assert newest.items == [mixed[9], mixed[8]]


def test_a_position_outside_its_order_is_ignored(admin, mixed):
    nonsense = QueuePosition(sort=PRIORITY, as_of=NOW, part=7, values=(NOW,), pk=1)

    page = work_queue_page(
        user=admin, filters=WorkItemFilters(), size=1, after=nonsense, now=NOW
    )

    assert page.items == [mixed[1]]


def test_filters_apply_to_every_part_of_the_order(admin, mixed, colleague):
    work_item_assign(work_item=mixed[8], assignee=colleague, actor=admin)
    work_item_assign(work_item=mixed[2], assignee=colleague, actor=admin)

    pages = every_page(
        admin, sort=PRIORITY, size=1, filters=WorkItemFilters(assignee_id=colleague.pk)
    )

    assert flat(pages) == [mixed[8], mixed[2]]


def statements(user, **kwargs) -> int:
    with CaptureQueriesContext(connection) as captured:
        work_queue_page(user=user, filters=WorkItemFilters(), now=NOW, **kwargs)
    return len(captured)


@pytest.mark.parametrize("sort", [PRIORITY, OLDEST, NEWEST, DUE])
def test_a_page_takes_the_same_statements_for_every_order_size_and_depth(
    clinician, mixed, sort
):
    buckets = work_item_buckets()
    second = work_queue_page(
        user=clinician, filters=WorkItemFilters(), size=2, sort=sort, now=NOW
    ).next_position

    counted = {
        statements(clinician, size=size, sort=other, buckets=buckets)
        for size in (1, 2, 50)
        for other in (PRIORITY, OLDEST, NEWEST, DUE)
    } | {statements(clinician, size=2, sort=sort, after=second, buckets=buckets)}

    # Visibility (teams, organisations), the page, the counts: the same for
    # every order, page size and page.
    assert len(counted) == 1


@pytest.mark.parametrize("sort", [PRIORITY, OLDEST, NEWEST, DUE])
def test_a_page_reads_its_rows_in_one_statement(clinician, mixed, sort):
    with CaptureQueriesContext(connection) as captured:
        work_queue_page(
            user=clinician, filters=WorkItemFilters(), size=3, sort=sort, now=NOW
        )

    pages = [q["sql"] for q in captured if 'FROM "casework_workitem"' in q["sql"]]
    # One statement for the rows (with their documents), one for the counts.
    assert len(pages) == 2
    assert sum("docflow_document" in sql for sql in pages) == 1


def test_the_queue_reads_urgent_from_the_item_not_the_document(clinician, mixed):
    with CaptureQueriesContext(connection) as captured:
        work_queue_page(user=clinician, filters=WorkItemFilters(), size=3, now=NOW)

    (rows,) = [q["sql"] for q in captured if "docflow_document" in q["sql"]]
    assert '"casework_workitem"."urgent"' in rows
    assert '"docflow_document"."urgent" =' not in rows


# Bulk assign: the people offered are exactly those work_item_assign accepts for
# every item given.


def test_candidates_may_work_every_item_and_no_one_else(
    clinician, colleague, sending_organisation, mixed, practices
):
    other_trust = SendingOrganisationFactory(ods_code="RY2")
    elsewhere = open_item(
        document_in("rejected", sending_organisation=other_trust, reason="REJ01")
    )
    operations = open_item(
        document_in(
            "system_error", sending_organisation=sending_organisation, reason="5000"
        )
    )
    both_trusts = staff(
        CLINICAL_ADMIN,
        organisations=[sending_organisation, other_trust],
        username="cy",
    )
    staff(IG_OFFICER, organisations=[sending_organisation], username="iggy")
    operator = staff(
        INTEGRATION_OPERATOR, organisations=[sending_organisation], username="olu"
    )
    clinical = [mixed[0], mixed[1]]

    def names(items):
        people = work_item_assignee_candidates(user=clinician, work_items=items)
        return [person.username for person in people]

    assert names(clinical) == ["ada", "bo", "cy"]
    assert names([*clinical, elsewhere]) == ["cy"]
    assert names([operations]) == [operator.username]
    assert names([*clinical, operations]) == []
    assert names([]) == []
    assert both_trusts.username == "cy"


def test_candidates_are_what_the_assign_service_accepts(
    clinician, colleague, sending_organisation, mixed
):
    from casework.access import can_work

    everyone = [
        staff(role, organisations=[sending_organisation], username=f"p{n}")
        for n, role in enumerate([CLINICAL_ADMIN, INTEGRATION_OPERATOR, IG_OFFICER])
    ]
    items = list(mixed.values())

    offered = set(work_item_assignee_candidates(user=clinician, work_items=items))

    for person in [clinician, colleague, *everyone]:
        accepted = all(can_work(user=person, work_item=item) for item in items)
        assert (person in offered) is accepted, person.username


def test_nobody_is_offered_to_someone_who_may_not_assign(sending_organisation, mixed):
    worker = staff(INTEGRATION_OPERATOR, organisations=[sending_organisation])

    assert work_item_assignee_candidates(user=worker, work_items=[mixed[0]]) == []


def test_candidates_take_the_same_statements_however_many_items_or_staff(
    clinician, sending_organisation, mixed
):
    def counted(items):
        with CaptureQueriesContext(connection) as captured:
            work_item_assignee_candidates(user=clinician, work_items=items)
        return len(captured)

    counted([mixed[0]])  # the user's permission cache and the content types
    few = counted([mixed[0]])
    for n in range(4):
        staff(CLINICAL_ADMIN, organisations=[sending_organisation], username=f"x{n}")
    many = counted(list(mixed.values()))

    assert few == many


@pytest.mark.parametrize("sort", [PRIORITY, OLDEST, NEWEST, DUE])
def test_someone_who_sees_no_items_gets_an_empty_page_in_every_order(mixed, sort):
    nobody = UserFactory(password=None)

    page = work_queue_page(
        user=nobody, filters=WorkItemFilters(), size=5, sort=sort, now=NOW
    )

    assert (page.items, page.more, page.next_position) == ([], False, None)


def test_the_backfill_copies_urgent_from_documents_onto_items_and_history(
    sending_organisation, practices
):
    import importlib

    from django.apps import apps

    from casework.models import WorkItem

    backfill = importlib.import_module(
        "casework.migrations.0013_work_item_urgent_and_queue_orders"
    )
    urgent = open_item(
        document_in("rejected", sending_organisation=sending_organisation, urgent=True)
    )
    routine = open_item(
        document_in("rejected", sending_organisation=sending_organisation)
    )
    WorkItem.objects.update(urgent=False)
    WorkItem.history.update(urgent=False)

    backfill.copy_urgent(apps, None)

    assert [
        item.urgent
        for item in WorkItem.objects.filter(pk__in=[urgent.pk, routine.pk]).order_by(
            "pk"
        )
    ] == [True, False]
    assert {row.urgent for row in WorkItem.history.filter(id=urgent.pk)} == {True}
    assert {row.urgent for row in WorkItem.history.filter(id=routine.pk)} == {False}
