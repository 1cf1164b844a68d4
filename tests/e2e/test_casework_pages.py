"""Acceptance 2: a clinical admin works a REJ01 rejection in a real browser, and a
person without the team grant never sees it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm
from playwright.sync_api import expect

from audit.models import AccessLog
from casework.models import WorkItemStatus
from docflow.models import DocumentStatus
from tests.casework.factories import (
    CLINICAL_ADMIN,
    INTEGRATION_OPERATOR,
    directory,
    document_in,
    open_item,
)
from tests.factories import SendingOrganisationFactory, UserFactory
from tests.samples import VALID_NHS_NUMBER

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("reference_data"),
]

PASSWORD = "correct-horse-battery-staple"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def person(username, role, organisation, *, content=False):
    user = UserFactory(username=username, password=PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    assign_perm("docflow.access_documents", user, organisation)
    if content:
        assign_perm("docflow.view_document_content", user)
    return user


def sign_in(page, base_url, username):
    page.goto(f"{base_url}/work/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")


def assert_png(path):
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 1000, path


def test_clinical_admin_reroutes_a_rej01_rejection_and_it_leaves_the_queue(
    live_server, browser, page, artefacts
):
    organisation = SendingOrganisationFactory(ods_code="RX1")
    directory("A81001", "A81002")
    document = document_in(
        "rejected", sending_organisation=organisation, reason="REJ01"
    )
    item = open_item(document)
    person("ada", CLINICAL_ADMIN, organisation)  # content comes with the role
    person("olu", INTEGRATION_OPERATOR, organisation, content=True)
    item_path = f"/work/items/{item.public_id}/"

    # Someone without the clinical team's grant never sees the open item.
    outsider = browser.new_context().new_page()
    sign_in(outsider, live_server.url, "olu")
    expect(outsider.locator("#work-items")).to_contain_text("No work items match.")
    assert outsider.goto(f"{live_server.url}{item_path}").status == 404
    outsider.context.close()

    # The team queue shows the rejection; the screenshot is kept.
    sign_in(page, live_server.url, "ada")
    rejection = page.get_by_role("link", name=re.compile("REJ01"))
    expect(rejection).to_have_count(1)
    page.screenshot(path=artefacts / "queue.png", full_page=True)

    # The work item page: metadata and timeline, never patient identifiers.
    rejection.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("REJ01")
    assert page.url == f"{live_server.url}{item_path}"
    assert VALID_NHS_NUMBER not in page.content()
    expect(page.locator("#document-timeline")).to_contain_text("mark_rejected")
    page.screenshot(path=artefacts / "item.png", full_page=True)

    # Viewing the document asks for a reason, in this tab: no second copy of the
    # page opens elsewhere with the error.
    page.get_by_text("View document", exact=True).first.click()
    viewer = page.locator("#view-document form")
    viewer.get_by_role("button", name="View document").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text(
        "Enter why you need to see the document."
    )
    assert len(page.context.pages) == 1
    viewer.get_by_label("Why do you need to see the document?").fill(
        "Confirm which practice the letter names"
    )
    with page.context.expect_event(
        "response", predicate=lambda r: r.url.endswith(f"{item_path}document/")
    ) as shown:
        viewer.get_by_role("button", name="View document").click()
    assert shown.value.status == 200
    assert shown.value.headers["content-type"] == "application/pdf"
    assert shown.value.headers["cache-control"] == "no-store"
    for other in page.context.pages[1:]:
        other.close()
    log = AccessLog.objects.get()
    assert (log.channel, log.actor_label, log.target_id) == (
        "staff_page",
        "ada",
        str(document.public_id),
    )

    # Reroute to another practice, confirmed on a page naming it; the item is gone
    # from the queue.
    page.get_by_text("Reroute to another practice", exact=True).first.click()
    reroute = page.locator("#action-reroute form")
    reroute.get_by_label("New practice (ODS code)").fill("A81002")
    reroute.get_by_label("Reason").fill("Patient registered at A81002 now")
    reroute.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name=re.compile("^Reroute to ")).click()
    expect(page.locator("#outcome")).to_contain_text("(A81002) as a new transmission")
    page.get_by_role("link", name="Go to the work queue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")
    expect(page.get_by_role("link", name=re.compile("REJ01"))).to_have_count(0)
    page.screenshot(path=artefacts / "queue-after-reroute.png", full_page=True)

    item.refresh_from_db()
    document.refresh_from_db()
    assert (item.status, item.resolution) == (WorkItemStatus.RESOLVED, "reroute")
    assert (document.status, document.destination_ods_code) == (
        DocumentStatus.READY,
        "A81002",
    )

    # Signing out ends the session: the queue asks for sign-in again.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/work/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    for name in ("queue.png", "item.png", "queue-after-reroute.png"):
        assert_png(artefacts / name)
