"""Reads: staff see only the teams and sending organisations they are granted."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser

from casework.models import WorkItem
from casework.selectors import (
    WorkItemFilters,
    teams_for,
    work_item_actions,
    work_item_assignees,
    work_item_bucket_counts,
    work_item_get,
    work_item_history,
    work_items_for,
)
from casework.services import work_item_assign, work_item_resolve_no_further_action
from tests.casework.factories import (
    CLINICAL_ADMIN,
    IG_OFFICER,
    document_in,
    open_item,
    staff,
)
from tests.factories import SendingOrganisationFactory, UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


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
