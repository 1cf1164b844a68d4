"""Reads: staff see only the teams and sending organisations they are granted."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser, Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from casework import access, selectors
from casework.counting import work_item_counts_rebuild
from casework.models import WorkItem
from casework.selectors import (
    ALL,
    WorkItemFilters,
    teams_for,
    work_item_actions,
    work_item_assignees,
    work_item_bucket_counts,
    work_item_get,
    work_item_history,
    work_item_page,
    work_items_for,
)
from casework.services import (
    work_item_assign,
    work_item_resolve_no_further_action,
    work_item_unassign,
)
from tests.casework.factories import (
    CLINICAL_ADMIN,
    IG_OFFICER,
    INTEGRATION_OPERATOR,
    document_in,
    fresh,
    open_item,
    staff,
)
from tests.factories import SendingOrganisationFactory, UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
# Permissions, role grants, object grants on the team and sender, and the people.
ASSIGNEE_QUERIES = 6


@pytest.fixture
def other_trust(db):
    return SendingOrganisationFactory(ods_code="RY2", name="Other Trust")


@pytest.fixture
def items(sending_organisation, other_trust, practices):
    """One hour apart: a clinical rejection, a system error (operations team), a
    held document, and a rejection at another trust."""
    made = {}
    for hour, (name, state, reason, organisation) in enumerate(
        [
            ("rejection", "rejected", "REJ01", sending_organisation),
            ("system_error", "system_error", "5000", sending_organisation),
            ("held", "held_after_send", "DC02", sending_organisation),
            ("other_trust", "rejected", "REJ02", other_trust),
        ]
    ):
        with time_machine.travel(START + dt.timedelta(hours=hour), tick=False):
            document = document_in(
                state, sending_organisation=organisation, reason=reason
            )
        made[name] = open_item(document)
    return made


def test_staff_see_their_teams_items_of_their_organisations_oldest_first(
    items, clinician, operator
):
    assert list(work_items_for(user=clinician)) == [items["rejection"], items["held"]]
    assert list(work_items_for(user=operator)) == [items["system_error"]]


def test_without_the_view_role_or_signed_out_nothing_is_visible(
    items, sending_organisation, clinical_team
):
    granted_but_no_role = staff(
        None, organisations=[sending_organisation], teams=[clinical_team]
    )

    assert list(work_items_for(user=granted_but_no_role)) == []
    assert list(work_items_for(user=AnonymousUser())) == []
    assert list(work_items_for(user=None)) == []


def test_ig_officers_see_the_teams_they_are_granted(
    items, sending_organisation, operations_team
):
    officer = staff(
        IG_OFFICER, organisations=[sending_organisation], teams=[operations_team]
    )

    assert list(work_items_for(user=officer)) == [items["system_error"]]


def test_a_superuser_sees_every_item(items):
    admin = UserFactory(is_superuser=True, password=None)

    assert work_items_for(user=admin).count() == 4


def test_keyset_pagination_continues_after_the_last_row(items, sending_organisation):
    admin = UserFactory(is_superuser=True, password=None)
    first_page = list(work_items_for(user=admin)[:2])
    last = first_page[-1]

    second_page = list(
        work_items_for(
            user=admin, filters=WorkItemFilters(after=(last.opened_at, last.id))
        )[:2]
    )

    assert first_page == [items["rejection"], items["system_error"]]
    assert second_page == [items["held"], items["other_trust"]]


def test_filters_narrow_the_queue(items, clinician, colleague):
    work_item_assign(work_item=items["held"], assignee=colleague, actor=clinician)

    def ids(**filters):
        return list(work_items_for(user=clinician, filters=WorkItemFilters(**filters)))

    assert ids(bucket="clinical") == [items["rejection"]]
    assert ids(bucket="routing") == [items["held"]]
    assert ids(unassigned=True) == [items["rejection"]]
    assert ids(assignee_id=colleague.pk) == [items["held"]]
    assert ids(status="assigned") == [items["held"]]
    assert ids(reason_code="REJ01") == [items["rejection"]]
    assert ids(overdue_at=START + dt.timedelta(hours=25)) == [items["rejection"]]
    assert ids(status="ended") == []


def test_bucket_counts_show_every_bucket_with_active_and_overdue(items, clinician):
    work_item_resolve_no_further_action(
        work_item=items["held"], actor=clinician, reason="Posted instead"
    )

    with time_machine.travel(START + dt.timedelta(hours=30), tick=False):
        counts = {
            count.key: (count.active, count.overdue)
            for count in work_item_bucket_counts(user=clinician)
        }

    assert counts == {
        "needs_classifying": (0, 0),
        "routing": (0, 0),
        "clinical": (1, 1),
        "content": (0, 0),
        "infrastructure": (0, 0),
        "delivery": (0, 0),
    }


def test_an_item_out_of_reach_is_indistinguishable_from_a_missing_one(items, clinician):
    assert (
        work_item_get(user=clinician, public_id=items["rejection"].public_id)
        == (items["rejection"])
    )
    for hidden in (items["system_error"], items["other_trust"]):
        with pytest.raises(WorkItem.DoesNotExist):
            work_item_get(user=clinician, public_id=hidden.public_id)
    assert (
        list(work_item_history(user=clinician, work_item=items["system_error"])) == []
    )


def test_history_names_who_changed_what_and_why(items, clinician, colleague):
    item = items["rejection"]
    work_item_assign(work_item=item, assignee=colleague, actor=clinician)

    rows = list(work_item_history(user=clinician, work_item=item))

    assert [(row.status, row.history_user) for row in rows] == [
        ("assigned", clinician),
        ("open", None),
    ]


def test_actions_offered_follow_role_and_document_state(items, clinician, operator):
    assert work_item_actions(user=clinician, work_item=items["rejection"]) == {
        "resend",
        "reroute",
        "corrected_version",
        "other_route",
        "no_further_action",
        "assign",
        "take",
    }
    assert "document_cancelled" in work_item_actions(
        user=clinician, work_item=items["held"]
    )
    assert work_item_actions(user=operator, work_item=items["system_error"]) == {
        "resend",
        "assign",
        "take",
    }
    assert work_item_actions(user=operator, work_item=items["rejection"]) == set()


def test_assignees_are_the_people_who_may_work_the_item(
    items, clinician, colleague, operator
):
    staff(CLINICAL_ADMIN, username="zed")  # no organisation grant

    assert work_item_assignees(work_item=items["rejection"]) == [clinician, colleague]
    assert work_item_assignees(work_item=items["system_error"]) == [operator]


def test_teams_for_lists_the_granted_teams(clinician, clinical_team):
    assert list(teams_for(user=clinician)) == [clinical_team]


@pytest.fixture
def everyone(items, sending_organisation, other_trust, clinician, operator):
    """People granted in every way the access rules know, and some refused."""
    clinical_team = items["rejection"].team
    operations_team = items["system_error"].team
    trust_group = Group.objects.create(name="Trust staff")
    assign_perm("docflow.access_documents", trust_group, other_trust)
    team_group = Group.objects.create(name="Operations cover")
    assign_perm("casework.work_team_items", team_group, operations_team)
    every_team = staff(CLINICAL_ADMIN, organisations=[sending_organisation])
    assign_perm("casework.work_team_items", every_team)
    every_trust = staff(INTEGRATION_OPERATOR)
    assign_perm("docflow.access_documents", every_trust)
    by_groups = staff(CLINICAL_ADMIN)
    by_groups.groups.add(trust_group, team_group)
    gone = staff(CLINICAL_ADMIN, organisations=[sending_organisation])
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    return [
        fresh(person)
        for person in [
            clinician,
            operator,
            staff(
                IG_OFFICER,
                organisations=[sending_organisation],
                teams=[operations_team],
            ),
            staff(None, organisations=[sending_organisation], teams=[clinical_team]),
            staff(CLINICAL_ADMIN),  # no organisation granted
            staff(CLINICAL_ADMIN, organisations=[other_trust]),
            every_team,
            every_trust,
            by_groups,
            gone,
            UserFactory(is_superuser=True, password=None),
        ]
    ]


@pytest.fixture
def unteamed(items):
    """An item whose bucket names no team: only those granted every team see it."""
    item = items["held"]
    WorkItem.objects.filter(pk=item.pk).update(team=None)
    # A bulk write saves no instance: recount the queue's kept counts after it.
    work_item_counts_rebuild()
    item.refresh_from_db()
    return item


def test_queue_reads_follow_the_access_rules_exactly(everyone, items, unteamed):
    seen = set()
    for person in everyone:
        listed = set(work_items_for(user=person, filters=WorkItemFilters(status=ALL)))
        allowed = set(access.work_items_visible_to(user=person))
        assert listed == allowed, person.username
        counted = sum(count.active for count in work_item_bucket_counts(user=person))
        assert counted == len(allowed), person.username
        seen.add(frozenset(item.pk for item in listed))
    # The people above see different sets of items, from none to all of them.
    assert frozenset() in seen
    assert frozenset(item.pk for item in WorkItem.objects.all()) in seen
    assert len(seen) >= 5


def test_assignees_are_exactly_those_access_lets_work_the_item(
    everyone, items, unteamed
):
    people = sorted(
        (person for person in everyone if person.is_active),
        key=lambda person: person.username,
    )
    for item in WorkItem.objects.all():
        expected = [
            person for person in people if access.can_work(user=person, work_item=item)
        ]
        assert work_item_assignees(work_item=item) == expected, item.reason_code
        assert expected, item.reason_code  # the superuser at least


def test_assignees_take_the_same_statements_however_many_staff(
    items, sending_organisation, django_assert_num_queries
):
    item = items["rejection"]
    work_item_assignees(work_item=item)  # content types cached, as in a live process
    with django_assert_num_queries(ASSIGNEE_QUERIES):
        few = work_item_assignees(work_item=item)
    for n in range(10):
        staff(CLINICAL_ADMIN, organisations=[sending_organisation], username=f"s{n}")
    with django_assert_num_queries(ASSIGNEE_QUERIES):
        many = work_item_assignees(work_item=item)

    assert len(many) == len(few) + 10


def test_counts_and_the_sender_filter_read_the_items_own_sending_organisation(
    items, clinician, sending_organisation, other_trust
):
    admin = UserFactory(is_superuser=True, password=None)
    with CaptureQueriesContext(connection) as captured:
        counts = work_item_bucket_counts(user=clinician)
    by_sender = work_items_for(
        user=admin, filters=WorkItemFilters(sending_organisation_id=other_trust.pk)
    )

    assert list(by_sender) == [items["other_trust"]]
    assert sum(count.active for count in counts) == 2
    (counting,) = [query for query in captured if "COUNT(" in query["sql"]]
    assert "sending_organisation_id" in counting["sql"]
    assert "docflow_document" not in counting["sql"]


def test_deep_pages_continue_from_the_cursor_with_ties_on_the_time(
    sending_organisation, practices
):
    admin = UserFactory(is_superuser=True, password=None)
    with time_machine.travel(START, tick=False):
        made = [
            open_item(
                document_in("rejected", sending_organisation=sending_organisation)
            )
            for _ in range(3)
        ]
    first = made[0]

    after = list(
        work_items_for(
            user=admin, filters=WorkItemFilters(after=(first.opened_at, first.pk))
        )
    )

    assert after == made[1:]


def test_the_item_page_lists_are_bounded_newest_first(
    items, clinician, colleague, monkeypatch
):
    monkeypatch.setattr(selectors, "ITEM_PAGE_ROWS", 2)
    item = items["rejection"]
    for _ in range(2):
        item = work_item_assign(work_item=item, assignee=colleague, actor=clinician)
        item = work_item_unassign(
            work_item=item, actor=clinician, holder_confirmed=True
        )

    page = work_item_page(user=clinician, public_id=item.public_id)

    assert page.item == item
    assert [row.history_change_reason for row in page.history] == [
        "Unassigned from bo",
        "Assigned to bo",
    ]
    assert page.history.more
    assert [event.action for event in page.item_events] == [
        "work_item.assigned",
        "work_item.unassigned",
    ]
    assert page.item_events.more
    assert not page.transmissions.more
    assert page.assignees == [clinician, colleague]
    assert "take" in page.actions


def test_the_item_page_is_refused_alike_for_a_hidden_item(items, clinician):
    with pytest.raises(WorkItem.DoesNotExist):
        work_item_page(user=clinician, public_id=items["other_trust"].public_id)
