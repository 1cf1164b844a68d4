"""The work item page as a clinical admin uses it: enough to act, the patient only
on request, reroute through a confirmation page, stale pages and held items
refused, and the NHS.UK page patterns (title, error summary, kept values)."""

from __future__ import annotations

import html as markup
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from audit.models import AccessLog
from casework.models import WorkItemStatus
from casework.services import work_item_assign
from docflow.models import DocumentStatus, Organisation
from tests.casework.factories import (
    CLINICAL_ADMIN,
    document_in,
    fresh,
    open_item,
    queued,
)
from tests.samples import VALID_NHS_NUMBER

DASH = "\u2013"  # the en dash between a title's parts
SPACED_NHS_NUMBER = (
    f"{VALID_NHS_NUMBER[:3]} {VALID_NHS_NUMBER[3:6]} {VALID_NHS_NUMBER[6:]}"
)


@pytest.fixture
def rejected(sending_organisation, practices):
    Organisation.objects.filter(ods_code="A81002").update(name="Hill Surgery")
    return document_in(
        "rejected",
        sending_organisation=sending_organisation,
        reason="REJ01",
        source_reference="DEMO-006",
        description="Respiratory clinic letter",
        sender_person="Dr A Jones",
        sender_department="Respiratory medicine",
        urgent=True,
    )


@pytest.fixture
def item(rejected):
    return open_item(rejected)


@pytest.fixture
def ada(client, clinician):
    client.force_login(clinician)
    return client


def title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip()


def error_links(html: str) -> list[tuple[str, str]]:
    summary = re.search(r'class="nhsuk-error-summary".*?</ul>', html, re.S).group(0)
    return [
        (target, markup.unescape(text))
        for target, text in re.findall(r'<a href="#([^"]+)">([^<]+)</a>', summary)
    ]


def assert_no_patient(html: str) -> None:
    assert VALID_NHS_NUMBER not in html
    assert SPACED_NHS_NUMBER not in html
    assert "Testpatient" not in html.replace("TESTPATIENT", "")
    assert "TESTPATIENT" not in html


# Enough to act


def test_item_page_shows_what_a_person_needs_to_act_without_the_patient(ada, item):
    response = ada.get(reverse("casework:item", args=[item.public_id]))

    html = response.content.decode()
    details = re.search(r'id="document-details".*?</dl>', html, re.S).group(0)
    assert "test, reference <code>DEMO-006</code>" in details
    for shown in (
        "Respiratory clinic letter",
        "Dr A Jones",
        "Respiratory medicine",
        "15 Jan 2024",
        "Urgent",
    ):
        assert shown in details
    assert title(html) == f"REJ01 {item.reason_title} {DASH} work item {DASH} docflow"
    assert 'action="/work/items/' in html and "Show patient details" in html
    assert_no_patient(html)


def test_view_document_is_offered_to_a_clinical_admin_and_opens_no_tab_by_itself(
    ada, item
):
    html = ada.get(reverse("casework:item", args=[item.public_id])).content.decode()

    viewer = re.search(r'id="view-document".*?</form>', html, re.S).group(0)
    assert "View document" in viewer
    assert "target=" not in viewer  # view-document.js sets it once a reason is given
    assert "data-new-tab-when-reason" in viewer


def test_view_document_without_a_reason_shows_the_error_summary_on_this_page(ada, item):
    response = ada.post(
        reverse("casework:item-document", args=[item.public_id]), {"view-reason": ""}
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert title(html) == (
        f"Error: REJ01 {item.reason_title} {DASH} work item {DASH} docflow"
    )
    assert error_links(html) == [
        ("id_view-reason", "Enter why you need to see the document.")
    ]
    assert AccessLog.objects.count() == 0


# The patient, on request


def test_show_patient_details_reveals_them_once_and_logs_the_access(ada, item):
    response = ada.post(
        reverse("casework:item-patient", args=[item.public_id]),
        {"patient-reason": "Trace the patient on PDS"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    details = re.search(r'id="patient-details".*?</dl>', html, re.S).group(0)
    assert SPACED_NHS_NUMBER in details
    assert "TESTPATIENT, Alex" in details
    assert "1 Mar 1950" in details
    assert VALID_NHS_NUMBER not in title(html) and "TESTPATIENT" not in title(html)
    log = AccessLog.objects.get()
    assert (log.action, log.reason) == ("reveal_patient", "Trace the patient on PDS")
    # The next page load shows them no more.
    again = ada.get(reverse("casework:item", args=[item.public_id]))
    assert_no_patient(again.content.decode())


def test_show_patient_details_without_a_reason_is_an_error_by_the_field(ada, item):
    response = ada.post(
        reverse("casework:item-patient", args=[item.public_id]),
        {"patient-reason": " "},
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert title(html).startswith("Error: ")
    assert error_links(html) == [
        ("id_patient-reason", "Enter why you need the patient's details.")
    ]
    assert 'data-module="nhsuk-error-summary"' in html
    assert_no_patient(html)
    assert AccessLog.objects.count() == 0


def test_show_patient_details_needs_the_permission(client, clinician, item):
    Group.objects.get(name=CLINICAL_ADMIN).permissions.remove(
        Permission.objects.get(codename="view_patient_identity")
    )
    client.force_login(fresh(clinician))

    page = client.get(reverse("casework:item", args=[item.public_id]))
    response = client.post(
        reverse("casework:item-patient", args=[item.public_id]),
        {"patient-reason": "Trace"},
    )

    assert "Show patient details" not in page.content.decode()
    assert response.status_code == 403
    assert_no_patient(response.content.decode())
    assert AccessLog.objects.count() == 0


# Reroute through a confirmation page


def test_the_reroute_page_asks_for_the_practice_first_prefilled_from_the_link(
    ada, item
):
    response = ada.get(
        reverse("casework:item-reroute", args=[item.public_id]) + "?ods_code=a81002"
    )

    html = response.content.decode()
    form = re.search(r'id="reroute-form".*?</form>', html, re.S).group(0)
    assert form.index('name="reroute-ods_code"') < form.index('name="reroute-reason"')
    assert 'value="A81002"' in form
    assert f'name="reroute-version" value="{item.version}"' in form
    assert title(html) == (
        f"Reroute {DASH} REJ01 {item.reason_title} {DASH} work item {DASH} docflow"
    )


def test_reroute_shows_a_confirmation_naming_the_practice_and_sends_nothing(
    ada, item, rejected
):
    response = ada.post(
        reverse("casework:item-reroute", args=[item.public_id]),
        {
            "reroute-ods_code": "a81002",
            "reroute-reason": "PDS shows Hill Surgery",
            "reroute-version": item.version,
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<h1 id="confirm-title"[^>]*>Check the practice', html)
    assert re.search(r'id="practice-name">Hill Surgery<', html)
    assert re.search(r'id="practice-ods-code">A81002<', html)
    assert re.search(r'id="practice-endpoint">Docman 7<', html)
    assert re.search(r'id="practice-status">Active', html)
    assert (
        "The letter will be sent to Hill Surgery (A81002) as a new transmission; "
        "the rejected one stays linked to this document."
    ) in html
    assert 'name="confirm" value="yes"' in html
    rejected.refresh_from_db()
    assert (rejected.status, rejected.destination_ods_code) == (
        DocumentStatus.REJECTED,
        "A81001",
    )
    assert queued() == []


def test_confirming_the_reroute_resolves_the_item_and_names_the_practice(
    ada, item, rejected, clinician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = ada.post(
            reverse("casework:item-reroute", args=[item.public_id]),
            {
                "reroute-ods_code": "A81002",
                "reroute-reason": "PDS shows Hill Surgery",
                "reroute-version": item.version,
                "confirm": "yes",
            },
        )

    assert response.status_code == 302
    assert response["Location"] == reverse("casework:item", args=[item.public_id])
    item.refresh_from_db()
    rejected.refresh_from_db()
    assert (item.status, item.resolution, item.closed_by) == (
        WorkItemStatus.RESOLVED,
        "reroute",
        clinician,
    )
    assert (rejected.status, rejected.destination_ods_code) == (
        DocumentStatus.READY,
        "A81002",
    )
    assert [func for func, _ in queued()] == ["transmissions.tasks.resend_document"]
    page = ada.get(response["Location"]).content.decode()
    banner = re.search(r'id="outcome".*?</div>\s*</div>', page, re.S).group(0)
    assert "Rerouted to Hill Surgery (A81002) as a new transmission." in banner
    # Shown once.
    again = ada.get(response["Location"]).content.decode()
    assert 'id="outcome"' not in again


def test_a_refused_reroute_keeps_what_was_typed_and_links_the_error_to_the_field(
    ada, item
):
    response = ada.post(
        reverse("casework:item-reroute", args=[item.public_id]),
        {
            "reroute-ods_code": "a81006",
            "reroute-reason": "Closed practice typed by mistake",
            "reroute-version": item.version,
        },
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert title(html).startswith(f"Error: Reroute {DASH} REJ01")
    [(target, message)] = error_links(html)
    assert target == "id_reroute-ods_code"
    assert "is closed in the directory" in message
    assert 'value="a81006"' in html  # as typed
    assert "Closed practice typed by mistake</textarea>" in html


def test_a_confirmation_from_a_page_the_item_has_moved_on_from_is_refused(
    ada, item, rejected, colleague
):
    loaded = item.version
    work_item_assign(work_item=item, assignee=colleague, actor=colleague)

    response = ada.post(
        reverse("casework:item-reroute", args=[item.public_id]),
        {
            "reroute-ods_code": "A81002",
            "reroute-reason": "PDS shows Hill Surgery",
            "reroute-version": loaded,
            "reroute-holder_confirmed": "on",
            "confirm": "yes",
        },
    )

    html = response.content.decode()
    assert response.status_code == 409
    [(_, message)] = error_links(html)
    assert message.startswith("This item changed since you opened it: assigned to bo")
    # The form now carries the version shown, and what was typed.
    assert f'name="reroute-version" value="{loaded + 1}"' in html
    assert 'value="A81002"' in html and "PDS shows Hill Surgery</textarea>" in html
    rejected.refresh_from_db()
    assert rejected.destination_ods_code == "A81001"
    assert queued() == []


# Items someone else holds, and stale pages on the item page


def test_an_item_someone_else_holds_asks_for_confirmation_before_acting(
    ada, item, colleague
):
    item = work_item_assign(work_item=item, assignee=colleague, actor=colleague)
    url = reverse("casework:item-action", args=[item.public_id, "no-further-action"])
    page = ada.get(reverse("casework:item", args=[item.public_id])).content.decode()
    assert "I know bo holds this item" in page

    refused = ada.post(
        url,
        {
            "no-further-action-reason": "Duplicate letter",
            "no-further-action-version": item.version,
        },
    )

    html = refused.content.decode()
    assert refused.status_code == 409
    assert error_links(html) == [
        (
            "id_no-further-action-holder_confirmed",
            "bo holds this item. Confirm you know bo holds it to act on it.",
        )
    ]
    assert "Duplicate letter</textarea>" in html
    item.refresh_from_db()
    assert item.status == WorkItemStatus.ASSIGNED

    done = ada.post(
        url,
        {
            "no-further-action-reason": "Duplicate letter",
            "no-further-action-version": item.version,
            "no-further-action-holder_confirmed": "on",
        },
    )
    assert done.status_code == 302
    item.refresh_from_db()
    assert item.status == WorkItemStatus.RESOLVED


def test_an_action_from_a_stale_page_is_refused_with_what_changed(ada, item, colleague):
    loaded = item.version
    work_item_assign(work_item=item, assignee=colleague, actor=colleague)

    response = ada.post(
        reverse("casework:item-action", args=[item.public_id, "take"]),
        {"take-version": loaded, "take-holder_confirmed": "on"},
    )

    html = response.content.decode()
    assert response.status_code == 409
    assert title(html).startswith("Error: ")
    [(target, message)] = error_links(html)
    assert target == "id_take-reason"  # a form's own error links to its first field
    assert re.fullmatch(
        r"This item changed since you opened it: assigned to bo at \d\d:\d\d\. "
        r"Review it and try again\.",
        message,
    )
    item.refresh_from_db()
    assert item.assignee == colleague


def test_an_action_without_the_version_is_refused(ada, item):
    response = ada.post(
        reverse("casework:item-action", args=[item.public_id, "take"]), {}
    )

    assert response.status_code == 400
    [(target, message)] = error_links(response.content.decode())
    assert (target, message) == (
        "id_take-reason",
        "This form is out of date. Reload the item and try again.",
    )
    item.refresh_from_db()
    assert item.assignee is None


def test_resend_to_a_closed_practice_is_not_offered_and_the_page_says_why(ada, item):
    Organisation.objects.filter(ods_code="A81001").update(status="closed")

    html = ada.get(reverse("casework:item", args=[item.public_id])).content.decode()

    assert 'id="action-resend"' not in html
    assert "Resend is not available:" in html
    assert 'id="action-reroute"' in html
