"""The work queue page: sign-in lands on it, one set of filters marked and
summarised, invalid input reported, every order paged by keyset, relative ages,
and bulk assign offering only the people it will accept."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import pytest
import time_machine
from django.urls import reverse

from casework import queue_views as views
from casework.models import WorkItem
from tests.casework.factories import (
    CLINICAL_ADMIN,
    INTEGRATION_OPERATOR,
    document_in,
    open_item,
    staff,
)
from tests.factories import SendingOrganisationFactory, UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse-battery-staple"


def item_links(page: str) -> list[str]:
    return re.findall(r'href="(/work/items/[^"]+)"', page)


def title(page: str) -> str:
    return html_lib.unescape(re.search(r"<title>(.*?)</title>", page, re.S).group(1))


@pytest.fixture
def rejected(sending_organisation, practices):
    with time_machine.travel(START, tick=False):
        return open_item(
            document_in(
                "rejected", sending_organisation=sending_organisation, reason="REJ01"
            )
        )


def get(client, user, query=None, **kwargs):
    client.force_login(user)
    response = client.get(reverse("casework:queue"), query or {}, **kwargs)
    assert response.status_code == 200
    # Ages keep number and unit together with a no-break space.
    return response.content.decode().replace("\xa0", " ")


def test_signing_in_lands_on_the_work_queue(client, db):
    UserFactory(username="ada", password=PASSWORD)

    response = client.post(reverse("login"), {"username": "ada", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("casework:queue")


def test_signing_in_from_a_link_goes_back_to_that_page(client, db):
    UserFactory(username="ada", password=PASSWORD)

    response = client.post(
        f"{reverse('login')}?next=/ops/",
        {"username": "ada", "password": PASSWORD},
    )

    assert response["Location"] == "/ops/"


def test_one_set_of_filters_replaces_categories_and_kind_of_problem(
    client, clinician, rejected
):
    page = get(client, clinician)

    assert "Kind of problem" in page
    assert ">Categories<" not in page
    assert 'name="category"' not in page
    assert page.count('name="bucket"') == 6  # one checkbox per seeded bucket


def test_chosen_filters_are_checked_and_summarised_with_remove_links(
    client, clinician, rejected
):
    page = get(
        client, clinician, {"bucket": ["clinical", "routing"], "reason": "rej01"}
    )

    assert re.search(r'value="clinical" checked', page)
    assert re.search(r'value="routing" checked', page)
    assert not re.search(r'value="content" checked', page)
    assert 'value="rej01"' in page  # as typed
    summary = re.search(r'id="filtered-by">(.*?)</div>', page, re.S).group(1)
    removes = dict(
        re.findall(
            r"<strong>([^<]+)</strong> <a class=\"nhsuk-link\" href=\"\?([^\"]*)\"",
            summary,
        )
    )
    assert set(removes) == {"Clinical workflow", "Routing", "REJ01"}
    assert html_lib.unescape(removes["Clinical workflow"]) == (
        "bucket=routing&reason=rej01"
    )
    assert html_lib.unescape(removes["REJ01"]) == "bucket=clinical&bucket=routing"
    assert item_links(page) == [f"/work/items/{rejected.public_id}/"]


def test_no_summary_without_filters(client, clinician, rejected):
    page = get(client, clinician)

    assert 'id="filtered-by"' not in page
    assert title(page).startswith("Team queue")


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"destination": "not an ODS code"}, "id_destination", "Enter an ODS code"),
        ({"age": "99"}, "id_age", "Choose an age from the list."),
        ({"bucket": "operations"}, "id_bucket_0", "Choose kinds of problem"),
        ({"team": "9999"}, "id_team", "Choose a team from the list."),
        ({"sort": "sideways"}, "id_sort", "Choose an order from the list."),
        ({"reason": "X" * 65}, "id_reason", "64 characters or fewer"),
    ],
)
def test_invalid_input_is_reported_in_an_error_summary_and_the_title(
    client, clinician, rejected, query, field, message
):
    page = get(client, clinician, query)

    summary = re.search(r'class="nhsuk-error-summary"(.*?)</div>\s*</div>', page, re.S)
    assert summary is not None
    assert f'href="#{field}"' in summary.group(1)
    assert message in html_lib.unescape(summary.group(1))
    assert title(page).startswith("Error: Team queue")
    assert f'id="{field}"' in page  # the link has somewhere to go


def test_the_valid_filters_still_apply_beside_an_invalid_one(
    client, clinician, rejected
):
    shown = get(client, clinician, {"reason": "REJ01", "destination": "!!"})
    hidden = get(client, clinician, {"reason": "REJ02", "destination": "!!"})

    assert len(item_links(shown)) == 1
    assert item_links(hidden) == []
    assert "There is a problem" in hidden


def test_urgent_and_overdue_items_are_lifted_to_the_top(
    client, clinician, sending_organisation, practices
):
    made = []
    for hour, urgent in [(0, False), (10, False), (20, True), (40, False)]:
        with time_machine.travel(START + dt.timedelta(hours=hour), tick=False):
            made.append(
                open_item(
                    document_in(
                        "rejected",
                        sending_organisation=sending_organisation,
                        urgent=urgent,
                    )
                )
            )
    with time_machine.travel(START + dt.timedelta(hours=41), tick=False):
        page = get(client, clinician)

    # Urgent (hour 20), then overdue (hours 0 and 10: due 24 hours after), then
    # the rest oldest first.
    assert item_links(page) == [
        f"/work/items/{made[i].public_id}/" for i in (2, 0, 1, 3)
    ]
    assert "Work items, urgent first, then overdue, then oldest" in page
    assert page.count(">Urgent</strong>") == 1


@pytest.mark.parametrize("sort", ["priority", "oldest", "newest", "due"])
def test_every_order_pages_by_keyset_through_the_next_links(
    client, clinician, sending_organisation, practices, monkeypatch, sort
):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for hour in range(5):
        with time_machine.travel(START + dt.timedelta(hours=hour * 10), tick=False):
            document_in(
                "rejected",
                sending_organisation=sending_organisation,
                urgent=hour == 3,
            )
    client.force_login(clinician)
    with time_machine.travel(START + dt.timedelta(hours=45), tick=False):
        seen, url = [], f"/work/?sort={sort}"
        while url:
            page = client.get(url).content.decode()
            seen += item_links(page)
            found = re.search(r'href="\?([^"]*)" rel="next"', page)
            url = f"/work/?{html_lib.unescape(found.group(1))}" if found else None
    expected = [
        f"/work/items/{item.public_id}/"
        for item in WorkItem.objects.order_by("opened_at")
    ]

    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen)) == 5
    if sort == "oldest":
        assert seen == expected
    if sort == "newest":
        assert seen == expected[::-1]


def test_ages_are_relative_and_overdue_says_by_how_much(client, clinician, rejected):
    with time_machine.travel(START + dt.timedelta(hours=26), tick=False):
        page = get(client, clinician)

    assert ">1 day ago</time>" in page
    assert "Overdue by 2 hours" in page


def test_an_item_not_yet_due_says_when(client, clinician, rejected):
    with time_machine.travel(START + dt.timedelta(hours=3), tick=False):
        page = get(client, clinician)

    assert ">3 hours ago</time>" in page
    assert ">in 21 hours</time>" in page


def test_the_header_marks_the_current_page(client, clinician, rejected):
    queue = get(client, clinician)
    mine = get(client, clinician, {"scope": "mine"})
    item = client.get(reverse("casework:item", args=[rejected.public_id]))

    def current(page):
        return re.findall(
            r'aria-current="(page|true)"><strong[^>]*>([^<]+)</strong>', page
        )

    assert current(queue) == [("page", "Work queue")]
    assert current(mine) == [("page", "My items")]
    assert current(item.content.decode()) == [("true", "Work queue")]
    assert 'data-module="nhsuk-header"' in queue
    assert 'class="nhsuk-header__menu" hidden' in queue


# Bulk assign ---------------------------------------------------------------------


def assignee_options(page: str) -> list[str]:
    select = re.search(r'<select[^>]*name="bulk-assignee".*?</select>', page, re.S)
    if select is None:
        return []
    return re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', select.group(0))


def test_bulk_assign_lists_only_people_who_may_work_the_items_shown(
    client, clinician, colleague, sending_organisation, rejected
):
    other_trust = SendingOrganisationFactory(ods_code="RY2")
    staff(CLINICAL_ADMIN, organisations=[other_trust], username="cy")
    staff(INTEGRATION_OPERATOR, organisations=[sending_organisation], username="olu")

    page = get(client, clinician)

    # cy works items but not this trust's; olu works items but not this team's.
    assert assignee_options(page) == ["ada", "bo"]


def test_bulk_assign_refuses_someone_who_may_not_work_a_ticked_item(
    client, clinician, sending_organisation, rejected
):
    other_trust = SendingOrganisationFactory(ods_code="RY2")
    outsider = staff(CLINICAL_ADMIN, organisations=[other_trust], username="cy")
    client.force_login(clinician)

    response = client.post(
        reverse("casework:bulk-assign"),
        {
            "bulk-items": [str(rejected.public_id)],
            "bulk-assignee": str(outsider.pk),
        },
        follow=True,
    )

    rejected.refresh_from_db()
    assert rejected.assignee is None
    assert "Select a valid choice" in response.content.decode()


def test_mixed_teams_on_a_page_offer_nobody_and_say_why(
    client, sending_organisation, rejected, practices
):
    document_in(
        "system_error", sending_organisation=sending_organisation, reason="5000"
    )
    admin = UserFactory(is_superuser=True, password=None, username="root")
    staff(CLINICAL_ADMIN, organisations=[sending_organisation], username="ada")

    page = get(client, admin)

    # Only a superuser may work both the clinical and the operations item.
    assert assignee_options(page) == ["root"]
