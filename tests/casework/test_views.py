"""Casework staff pages: what each page shows to whom, what each button does, and
that no page or URL carries patient identifiers."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.models import AccessLog
from casework import queue_views, selectors, views
from casework.models import WorkItemStatus
from casework.services import work_item_assign, work_item_unassign
from tests.casework.factories import (
    CLINICAL_ADMIN,
    IG_OFFICER,
    INTEGRATION_OPERATOR,
    document_in,
    fresh,
    open_item,
    queued,
    staff,
)
from tests.factories import VALID_NHS_NUMBER

PATIENT_NAME = "Testpatient"


@pytest.fixture
def rejected(sending_organisation, practices):
    return document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ01"
    )


@pytest.fixture
def reader(clinician):
    """The clinical admin, also allowed to read patient content."""
    assign_perm("docflow.view_document_content", clinician)
    return fresh(clinician)


def signed_in(client, user):
    client.force_login(user)
    return client


def item_links(html: str) -> list[str]:
    return re.findall(r'href="(/work/items/[^"]+)"', html)


def assert_no_patient_identifiers(html: str) -> None:
    assert VALID_NHS_NUMBER not in html
    assert PATIENT_NAME not in html


def test_urls_are_named_and_use_the_public_uuid_only(rejected):
    item = open_item(rejected)

    assert reverse("casework:queue") == "/work/"
    assert reverse("casework:item", args=[item.public_id]) == (
        f"/work/items/{item.public_id}/"
    )


def test_queue_needs_sign_in(client):
    response = client.get(reverse("casework:queue"))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_queue_lists_a_rejection_with_bucket_counts_and_no_patient_data(
    client, clinician, rejected
):
    item = open_item(rejected)

    response = signed_in(client, clinician).get(reverse("casework:queue"))

    html = response.content.decode()
    assert response.status_code == 200
    assert item_links(html) == [f"/work/items/{item.public_id}/"]
    assert "REJ01" in html
    assert 'data-bucket="clinical"' in html
    clinical = re.search(r'data-bucket="clinical">(.*?)</label>', html, re.S).group(1)
    assert 'aria-label="1 open, 1 overdue"' in clinical or 'aria-label="1 open"' in (
        clinical
    )
    assert_no_patient_identifiers(html)


def test_queue_hides_items_of_teams_the_user_is_not_granted(
    client, sending_organisation, rejected
):
    operator = staff(
        INTEGRATION_OPERATOR, organisations=[sending_organisation], username="ops"
    )

    response = signed_in(client, operator).get(reverse("casework:queue"))

    assert item_links(response.content.decode()) == []


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({"reason": "rej01"}, True),
        ({"reason": "REJ02"}, False),
        ({"destination": "a81001"}, True),
        ({"destination": "A81002"}, False),
        ({"assignee": "nobody"}, True),
        ({"assignee": "me"}, False),
        ({"scope": "mine"}, False),
        ({"overdue": "on"}, False),
        ({"age": "1"}, False),
        ({"bucket": "clinical"}, True),
        ({"bucket": "routing"}, False),
        ({"bucket": ["routing", "clinical"]}, True),
        ({"reason": "REJ02", "destination": "not an ODS code"}, False),
    ],
)
def test_queue_filters_narrow_the_list(client, clinician, rejected, query, shown):
    response = signed_in(client, clinician).get(reverse("casework:queue"), query)

    assert response.status_code == 200
    assert bool(item_links(response.content.decode())) is shown


def test_htmx_filtering_returns_only_the_results_fragment(client, clinician, rejected):
    response = signed_in(client, clinician).get(
        reverse("casework:queue"),
        {"reason": "REJ01"},
        headers={"HX-Request": "true", "HX-Target": "queue-results"},
    )

    html = response.content.decode()
    assert "<html" not in html
    assert len(item_links(html)) == 1
    assert "HX-Request" in response["Vary"]


def test_queue_pages_by_keyset_cursor_oldest_first(
    client, clinician, sending_organisation, practices, monkeypatch
):
    monkeypatch.setattr(queue_views, "PAGE_SIZE", 2)
    items = [
        open_item(document_in("rejected", sending_organisation=sending_organisation))
        for _ in range(3)
    ]
    signed_in(client, clinician)

    first = client.get(reverse("casework:queue")).content.decode()
    next_href = re.search(r'href="\?([^"]*after=[^"]+)" rel="next"', first).group(1)
    second = client.get(f"/work/?{next_href.replace('&amp;', '&')}").content.decode()

    expected = [f"/work/items/{item.public_id}/" for item in items]
    assert item_links(first) == expected[:2]
    assert item_links(second) == expected[2:]
    assert 'rel="next"' not in second


def test_a_cursor_that_is_not_ours_shows_the_first_page(client, clinician, rejected):
    response = signed_in(client, clinician).get(
        reverse("casework:queue"), {"after": "not-a-cursor"}
    )

    assert len(item_links(response.content.decode())) == 1


# Statements a page may run, whatever the data and the staff: the figures today (3 of
# them the session's save on every request), so a page that starts reading per row
# or per person fails here. bench/queue.py measures the time.
# Five of the queue page's are the bulk-assign candidates (constant, not per row);
# two are the counts per bucket (the kept counts, and the items falling due today).
QUEUE_PAGE_QUERIES = 21
# Three of them ask the directory whether resend and reroute can succeed; one reads
# the item's latest PDS re-trace (REJ01 items).
ITEM_PAGE_QUERIES = 24


def queries_for(client, url) -> tuple[int, str]:
    client.get(url)  # warm the session and caches alike
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured), response.content.decode()


def more_staff(count, sending_organisation, prefix):
    """Colleagues in both working roles, granted the organisation: each may be given
    any item the pages show."""
    return [
        staff(role, organisations=[sending_organisation], username=f"{prefix}-{n}")
        for n in range(count)
        for role in (CLINICAL_ADMIN, INTEGRATION_OPERATOR)
    ]


def test_queue_query_count_does_not_grow_with_the_items_or_the_staff(
    client, clinician, sending_organisation, practices, monkeypatch
):
    monkeypatch.setattr(queue_views, "PAGE_SIZE", 50)
    signed_in(client, clinician)

    def documents(count):
        for _ in range(count):
            document_in("rejected", sending_organisation=sending_organisation)

    documents(5)
    small, small_html = queries_for(client, reverse("casework:queue"))
    documents(45)
    more_staff(5, sending_organisation, "extra")
    large, large_html = queries_for(client, reverse("casework:queue"))

    assert len(item_links(small_html)) == 5 and len(item_links(large_html)) == 50
    assert large_html.count("</option>") > small_html.count("</option>")
    assert small == large <= QUEUE_PAGE_QUERIES


def test_item_page_query_count_does_not_grow_with_history_events_or_staff(
    client, clinician, colleague, sending_organisation, rejected
):
    item = open_item(rejected)
    url = reverse("casework:item", args=[item.public_id])
    signed_in(client, clinician)

    small, small_html = queries_for(client, url)
    for _ in range(3):
        item = work_item_assign(work_item=item, assignee=colleague, actor=clinician)
        item = work_item_unassign(
            work_item=item, actor=clinician, holder_confirmed=True
        )
    people = more_staff(5, sending_organisation, "extra")
    large, large_html = queries_for(client, url)

    assert small_html.count("work_item.assigned") == 0
    assert large_html.count("work_item.assigned") == 3
    assignees = re.search(
        r'<select[^>]*name="assign-assignee".*?</select>', large_html, re.S
    ).group(0)
    assert all(f">{person.username}</option>" in assignees for person in people)
    assert small == large <= ITEM_PAGE_QUERIES


def test_item_page_shows_only_the_newest_rows_of_each_list(
    client, clinician, colleague, rejected, monkeypatch
):
    monkeypatch.setattr(selectors, "ITEM_PAGE_ROWS", 3)
    monkeypatch.setattr(views, "ITEM_PAGE_ROWS", 3)
    item = open_item(rejected)
    for _ in range(2):
        item = work_item_assign(work_item=item, assignee=colleague, actor=clinician)
        item = work_item_unassign(
            work_item=item, actor=clinician, holder_confirmed=True
        )

    html = (
        signed_in(client, clinician)
        .get(reverse("casework:item", args=[item.public_id]))
        .content.decode()
    )

    history = re.search(r'id="item-history".*?</table>', html, re.S).group(0)
    events = re.search(r'id="item-events".*?</table>', html, re.S).group(0)
    assert history.count('<tr class="nhsuk-table__row" role="row">') == 1 + 3
    assert events.count('<tr class="nhsuk-table__row" role="row">') == 1 + 3
    # The newest three events, oldest of them first: assigned, unassigned (the last).
    assert re.findall(r"work_item\.\w+", events) == [
        "work_item.unassigned",
        "work_item.assigned",
        "work_item.unassigned",
    ]
    assert "Only the latest 3 changes are shown." in html
    assert "Only the latest 3 work item events are shown." in html


def test_item_page_shows_metadata_timeline_and_actions_without_patient_data(
    client, reader, rejected
):
    item = open_item(rejected)

    response = signed_in(client, reader).get(
        reverse("casework:item", args=[item.public_id])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="document-timeline"' in html and "document.mark_rejected" in html
    assert 'id="item-events"' in html and "work_item.opened" in html
    assert 'id="action-reroute"' in html
    assert 'id="view-document"' in html
    assert_no_patient_identifiers(html)


def test_item_page_is_not_found_for_someone_without_the_team_grant(
    client, sending_organisation, rejected
):
    operator = staff(
        INTEGRATION_OPERATOR, organisations=[sending_organisation], username="ops"
    )

    response = signed_in(client, operator).get(
        reverse("casework:item", args=[open_item(rejected).public_id])
    )

    assert response.status_code == 404


def test_reroute_to_an_unknown_practice_is_refused_with_a_message(
    client, clinician, rejected
):
    item = open_item(rejected)
    url = reverse("casework:item-reroute", args=[item.public_id])

    response = signed_in(client, clinician).post(
        url,
        {
            "reroute-ods_code": "Z99999",
            "reroute-reason": "x",
            "reroute-version": item.version,
        },
    )

    item.refresh_from_db()
    assert item.status == WorkItemStatus.OPEN
    assert "There is a problem" in response.content.decode()
    assert queued() == []


def test_reroute_without_a_practice_shows_the_error_by_the_field(
    client, clinician, rejected
):
    item = open_item(rejected)
    url = reverse("casework:item-reroute", args=[item.public_id])

    response = signed_in(client, clinician).post(
        url, {"reroute-reason": "x", "reroute-version": item.version}
    )

    assert response.status_code == 400
    assert "Enter the ODS code of the practice" in response.content.decode()
    item.refresh_from_db()
    assert item.status == WorkItemStatus.OPEN


def test_take_button_assigns_the_item_to_the_user(client, clinician, rejected):
    item = open_item(rejected)

    response = signed_in(client, clinician).post(
        reverse("casework:item-action", args=[item.public_id, "take"]),
        {"take-version": item.version},
    )

    item.refresh_from_db()
    assert response.status_code == 302
    assert (item.status, item.assignee) == (WorkItemStatus.ASSIGNED, clinician)


def test_an_unknown_action_is_not_found(client, clinician, rejected):
    response = signed_in(client, clinician).post(
        reverse("casework:item-action", args=[open_item(rejected).public_id, "zap"])
    )

    assert response.status_code == 404


def test_bulk_assign_gives_the_ticked_items_to_a_colleague(
    client, clinician, colleague, sending_organisation, practices
):
    first, second, untouched = (
        open_item(document_in("rejected", sending_organisation=sending_organisation))
        for _ in range(3)
    )

    response = signed_in(client, clinician).post(
        reverse("casework:bulk-assign"),
        {
            "bulk-items": [str(first.public_id), str(second.public_id)],
            "bulk-assignee": str(colleague.pk),
            "bulk-reason": "Covering the rota",
            "next": "/work/?reason=REJ01",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/work/?reason=REJ01"
    for item in (first, second, untouched):
        item.refresh_from_db()
    assert [first.assignee, second.assignee, untouched.assignee] == [
        colleague,
        colleague,
        None,
    ]


def test_bulk_assign_offers_only_people_in_a_role_that_works_items(
    client, clinician, colleague, sending_organisation, rejected
):
    staff(IG_OFFICER, organisations=[sending_organisation], username="iggy")

    html = signed_in(client, clinician).get(reverse("casework:queue")).content
    assign_to = re.search(
        r'<select[^>]*name="bulk-assignee".*?</select>', html.decode(), re.S
    ).group(0)

    assert f">{colleague.username}</option>" in assign_to
    assert f">{clinician.username}</option>" in assign_to
    assert ">iggy</option>" not in assign_to


def test_bulk_assign_never_redirects_off_the_queue(
    client, clinician, colleague, rejected
):
    response = signed_in(client, clinician).post(
        reverse("casework:bulk-assign"),
        {
            "bulk-items": [str(open_item(rejected).public_id)],
            "bulk-assignee": str(colleague.pk),
            "next": "https://elsewhere.example/",
        },
    )

    assert response["Location"] == reverse("casework:queue")


def test_view_document_streams_the_pdf_inline_and_logs_the_reason(
    client, reader, rejected
):
    item = open_item(rejected)

    response = signed_in(client, reader).post(
        reverse("casework:item-document", args=[item.public_id]),
        {"view-reason": "Checking the practice named on the letter"},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert response["Content-Disposition"] == (
        f'inline; filename="{rejected.public_id}.pdf"'
    )
    assert response["Cache-Control"] == "no-store"
    log = AccessLog.objects.get()
    assert (log.channel, log.action, log.target_id, log.actor_label) == (
        "staff_page",
        "view",
        str(rejected.public_id),
        reader.get_username(),
    )
    assert log.reason == "Checking the practice named on the letter"


def test_view_document_without_a_reason_shows_nothing_and_logs_nothing(
    client, reader, rejected
):
    response = signed_in(client, reader).post(
        reverse("casework:item-document", args=[open_item(rejected).public_id]),
        {"view-reason": "  "},
    )

    assert response.status_code == 400
    assert "Enter why you need to see the document" in response.content.decode()
    assert AccessLog.objects.count() == 0


def test_view_document_needs_the_content_permission(client, clinician, rejected):
    item = open_item(rejected)
    # The Clinical admin role holds content by default; without it, turned away.
    Group.objects.get(name=CLINICAL_ADMIN).permissions.remove(
        Permission.objects.get(codename="view_document_content")
    )

    response = signed_in(client, fresh(clinician)).post(
        reverse("casework:item-document", args=[item.public_id]),
        {"view-reason": "Curious"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("casework:item", args=[item.public_id])
    assert AccessLog.objects.count() == 0


def test_view_document_is_not_found_without_the_team_grant(
    client, sending_organisation, rejected
):
    operator = staff(
        INTEGRATION_OPERATOR, organisations=[sending_organisation], username="ops"
    )
    assign_perm("docflow.view_document_content", operator)

    response = signed_in(client, fresh(operator)).post(
        reverse("casework:item-document", args=[open_item(rejected).public_id]),
        {"view-reason": "Curious"},
    )

    assert response.status_code == 404
    assert AccessLog.objects.count() == 0


def test_sign_in_page_uses_the_vendored_nhsuk_frontend(client):
    response = client.get(reverse("login"))

    html = response.content.decode()
    assert "vendor/nhsuk-frontend/nhsuk-frontend.min.css" in html
    assert 'for="id_username"' in html and 'for="id_password"' in html
