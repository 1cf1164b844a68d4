"""Acceptance 1 (issue 14): a clinical admin works a REJ01 from the queue to a safe
reroute in a real browser: patient details revealed on request (access-logged), the
reroute confirmed on a page naming the practice, the item gone from the queue; the
same by keyboard only, with focus where the person needs it after every action;
and a second person acting meanwhile makes the first one's page stale: warned,
refused, nothing sent."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm
from playwright.sync_api import expect

from audit.models import AccessLog
from casework.models import WorkItem, WorkItemStatus
from docflow.models import DocumentStatus, Organisation
from tests.casework.factories import CLINICAL_ADMIN, directory, document_in, open_item
from tests.factories import SendingOrganisationFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("reference_data"),
]

PASSWORD = "correct-horse-battery-staple"
# The PDS simulator's demo patient who moved to A81002 on 3 Nov 2026.
MOVED = "9990000425"
SPACED_NHS_NUMBER = f"{MOVED[:3]} {MOVED[3:6]} {MOVED[6:]}"
PDS_SAYS = "Registered at A81002 Hill Surgery since 3 Nov 2026"
SUCCESS = "Rerouted to Hill Surgery (A81002) as a new transmission."
TAB_LIMIT = 120


@pytest.fixture
def world(reference_data, pds_simulator):
    """An urgent REJ01 at A81001 for a trust whose patient PDS (the real simulator,
    over HTTP) has at A81002, two clinical admins (by role only: content, patient
    details and the PDS look-up come with the Clinical admin group)."""
    organisation = SendingOrganisationFactory(ods_code="RX1")
    directory("A81001", "A81002")
    Organisation.objects.filter(ods_code="A81002").update(name="Hill Surgery")
    document = document_in(
        "rejected",
        sending_organisation=organisation,
        reason="REJ01",
        source_reference="DEMO-006",
        description="Respiratory clinic letter",
        sender_person="Dr A Jones",
        sender_department="Respiratory medicine",
        urgent=True,
        nhs_number=MOVED,
    )
    # Older and routine: the oldest-first queue would show it first; the default
    # order lifts the urgent REJ01 above it.
    older = open_item(
        document_in(
            "rejected",
            sending_organisation=organisation,
            reason="REJ03",
            description="Routine outpatient letter",
        )
    )
    WorkItem.objects.filter(pk=older.pk).update(
        opened_at=timezone.now() - timedelta(days=3)
    )
    for username in ("ada", "bo"):
        user = UserFactory(username=username, password=PASSWORD)
        user.groups.add(Group.objects.get(name=CLINICAL_ADMIN))
        assign_perm("docflow.access_documents", user, organisation)
    return {"document": document, "item": open_item(document)}


def sign_in(page, base_url, username):
    page.goto(f"{base_url}/work/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")


def focused(page, selector: str) -> bool:
    return page.evaluate(
        "(selector) => document.activeElement?.matches(selector) ?? false", selector
    )


def expect_focus(page, selector: str) -> None:
    """Focus is on the element (polled: a module script may move it after load)."""
    page.wait_for_function(
        "(selector) => document.activeElement?.matches(selector)", arg=selector
    )


def tab_to(page, selector: str) -> None:
    """Press Tab until the element has focus, as a keyboard user would."""
    for _ in range(TAB_LIMIT):
        if focused(page, selector):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{selector} never took focus in {TAB_LIMIT} Tabs")


def assert_rerouted(world) -> None:
    item, document = world["item"], world["document"]
    item.refresh_from_db()
    document.refresh_from_db()
    assert (item.status, item.resolution) == (WorkItemStatus.RESOLVED, "reroute")
    assert (document.status, document.destination_ods_code) == (
        DocumentStatus.READY,
        "A81002",
    )


def test_a_clinical_admin_reroutes_a_rej01_after_checking_the_practice(
    live_server, page, world, artefacts
):
    sign_in(page, live_server.url, "ada")
    # The urgent REJ01 is at the top, above an older routine item.
    rows = page.locator("a[href*='/work/items/']")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("REJ01")
    page.screenshot(path=artefacts / "rej01-queue.png", full_page=True)
    rows.first.click()

    # Enough to act: where it came from, what it is, who wrote it; no patient yet.
    expect(page).to_have_title(
        re.compile(r"^REJ01 .* \u2013 work item \u2013 docflow$")
    )
    details = page.locator("#document-details")
    expect(details).to_contain_text("DEMO-006")
    expect(details).to_contain_text("Respiratory clinic letter")
    expect(details).to_contain_text("Dr A Jones")
    expect(details).to_contain_text("Respiratory medicine")
    expect(page.locator("#document-urgency")).to_have_text("Urgent")
    assert SPACED_NHS_NUMBER not in page.content()
    expect(page.locator("#view-document summary")).to_have_text("View document")

    # Show patient details: a reason, then the patient, and an access log row.
    page.get_by_label("Why do you need the patient's details?").fill(
        "Trace the patient on PDS"
    )
    page.get_by_role("button", name="Show patient details").click()
    expect(page.locator("#patient-nhs-number")).to_have_text(SPACED_NHS_NUMBER)
    expect(page.locator("#patient-name")).to_have_text("TESTPATIENT, Alex")
    assert MOVED not in page.url and "TESTPATIENT" not in page.title()
    log = AccessLog.objects.get()
    assert (log.actor_label, log.action) == ("ada", "reveal_patient")
    page.screenshot(path=artefacts / "rej01-patient.png", full_page=True)

    # PDS: where the patient is registered now, and a way to reroute there.
    trace = page.locator("#patient-trace")
    trace.get_by_role("button", name="Look up on PDS").click()
    expect(trace).to_contain_text(PDS_SAYS)
    assert AccessLog.objects.filter(action="pds_trace", actor_label="ada").exists()
    assert MOVED not in page.url
    page.screenshot(path=artefacts / "rej01-pds.png", full_page=True)

    # Reroute: the practice PDS named, prefilled; a reason; a confirmation.
    trace.get_by_role("link", name="Reroute to A81002").click()
    reroute = page.locator("#reroute-form")
    expect(reroute.get_by_label("New practice (ODS code)")).to_have_value("A81002")
    reroute.get_by_label("Reason").fill("PDS shows Hill Surgery")
    reroute.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Check the practice before rerouting"
    )
    expect(page.locator("#practice-name")).to_have_text("Hill Surgery")
    expect(page.locator("#practice-status")).to_contain_text("Active")
    expect(page.locator("#reroute-effect")).to_contain_text(
        "as a new transmission; the rejected one stays linked"
    )
    world["document"].refresh_from_db()
    assert world["document"].destination_ods_code == "A81001"  # nothing yet
    page.screenshot(path=artefacts / "rej01-confirm.png", full_page=True)

    page.get_by_role("button", name="Reroute to Hill Surgery").click()
    expect(page.locator("#outcome")).to_contain_text(SUCCESS)
    assert_rerouted(world)

    page.get_by_role("link", name="Go to the work queue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")
    expect(page.get_by_role("link", name=re.compile("REJ01"))).to_have_count(0)


def test_the_same_journey_by_keyboard_puts_focus_where_it_is_needed(
    live_server, page, world
):
    page.goto(f"{live_server.url}/work/")
    tab_to(page, "#id_username")
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")

    tab_to(page, "a[href*='/work/items/']")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("REJ01")

    # No reason: the error summary takes focus; its link leads to the field.
    tab_to(page, "#reveal-patient button")
    page.keyboard.press("Enter")
    expect(page).to_have_title(re.compile(r"^Error: REJ01"))
    expect_focus(page, ".nhsuk-error-summary")
    page.keyboard.press("Tab")
    assert focused(page, ".nhsuk-error-summary a[href='#id_patient-reason']")
    page.keyboard.press("Enter")
    expect_focus(page, "#id_patient-reason")
    page.keyboard.type("Trace the patient on PDS")
    page.keyboard.press("Enter")
    expect_focus(page, "#patient-details")
    expect(page.locator("#patient-nhs-number")).to_have_text(SPACED_NHS_NUMBER)
    assert AccessLog.objects.filter(action="reveal_patient").count() == 1

    # PDS: the look-up's answer takes focus; its link leads to the reroute form.
    tab_to(page, "#patient-trace button[type=submit]")
    page.keyboard.press("Enter")
    expect_focus(page, "#patient-trace")
    expect(page.locator("#patient-trace")).to_contain_text(PDS_SAYS)
    tab_to(page, "#patient-trace a[href*='ods_code=A81002']")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Reroute to another practice"
    )
    tab_to(page, "#reroute-form [name$=reason]")
    page.keyboard.type("PDS shows Hill Surgery")
    tab_to(page, "#reroute-form button[type=submit]")
    page.keyboard.press("Space")
    expect_focus(page, "h1#confirm-title")

    tab_to(page, "button[name=confirm]")
    page.keyboard.press("Enter")
    expect_focus(page, "#outcome")
    expect(page.locator("#outcome")).to_contain_text(SUCCESS)
    assert_rerouted(world)

    tab_to(page, "#outcome a")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")
    expect(page.get_by_role("link", name=re.compile("REJ01"))).to_have_count(0)


def test_a_second_person_acting_meanwhile_makes_the_confirmation_stale(
    live_server, browser, page, world, artefacts
):
    item_url = f"{live_server.url}/work/items/{world['item'].public_id}/"
    sign_in(page, live_server.url, "ada")
    page.goto(item_url)
    page.get_by_text("Reroute to another practice", exact=True).click()
    page.get_by_label("New practice (ODS code)").fill("A81002")
    page.locator("#action-reroute").get_by_label("Reason").fill("PDS says so")
    page.locator("#action-reroute").get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Check the practice before rerouting"
    )

    # Meanwhile Bo takes the item.
    other = browser.new_context().new_page()
    sign_in(other, live_server.url, "bo")
    other.goto(item_url)
    other.locator("#action-take summary").click()
    other.locator("#action-take").get_by_role("button", name="Take it").click()
    expect(other.locator("#item-assignee")).to_have_text("bo")
    other.context.close()

    # Ada's confirmation is refused, with what changed; nothing is sent.
    page.get_by_role("button", name="Reroute to Hill Surgery").click()
    expect(page).to_have_title(re.compile(r"^Error: Reroute"))
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text(
        re.compile(
            r"This item changed since you opened it: assigned to bo at \d\d:\d\d\. "
            r"Review it and try again\."
        )
    )
    expect_focus(page, ".nhsuk-error-summary")
    expect(page.get_by_label("New practice (ODS code)")).to_have_value("A81002")
    expect(page.get_by_label("I know bo holds this item")).not_to_be_checked()
    page.screenshot(path=artefacts / "rej01-stale.png", full_page=True)
    world["document"].refresh_from_db()
    world["item"].refresh_from_db()
    assert world["document"].destination_ods_code == "A81001"
    assert world["item"].status == WorkItemStatus.ASSIGNED

    # Without confirming Bo holds it, still refused; with it, the reroute goes.
    page.get_by_role("button", name="Continue").click()
    expect(summary).to_contain_text("bo holds this item.")
    page.get_by_label("I know bo holds this item").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Reroute to Hill Surgery").click()
    expect(page.locator("#outcome")).to_contain_text(SUCCESS)
    assert_rerouted(world)
