"""WCAG 1.4.10 Reflow and the NHS.UK header in a real browser: the queue, the
documents list and a document's page fit every width from 1280 px down to 320 px
without scrolling sideways (an overdue, urgent item on the queue), the queue keeps
Opened and Due on screen at 1024 px, the header's JavaScript runs (its "More" menu
opens at 320 px), aria-current marks the page shown, and no request fails (no
font, image or script the page asks for and cannot have)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm
from playwright.sync_api import expect

from tests.casework.factories import CLINICAL_ADMIN, directory, document_in
from tests.factories import SendingOrganisationFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("reference_data"),
]

PASSWORD = "correct-horse-battery-staple"
VIEWPORTS = [(1280, 900), (1024, 768), (390, 844), (320, 568)]


@pytest.fixture
def queue_data(db):
    organisation = SendingOrganisationFactory(ods_code="RX1")
    directory("A81001", "A81002")
    # Opened two days ago: overdue by a day; one of them urgent.
    with time_machine.travel(dt.datetime.now(dt.UTC) - dt.timedelta(days=2)):
        overdue = document_in(
            "rejected",
            sending_organisation=organisation,
            reason="REJ01",
            urgent=True,
            source_reference="DEMO-006-WITH-A-LONG-REFERENCE-THAT-MUST-WRAP",
        )
        document_in("system_error", sending_organisation=organisation, reason="5000")
    document_in("rejected", sending_organisation=organisation, reason="REJ02")
    user = UserFactory(username="ada", password=PASSWORD)
    user.groups.add(Group.objects.get(name=CLINICAL_ADMIN))
    assign_perm("docflow.access_documents", user, organisation)
    return overdue


def sign_in(page, base_url):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Signing in lands on the work queue.
    expect(page.get_by_role("heading", level=1)).to_have_text("Team queue")


def watch_requests(page) -> list[str]:
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.url}")
            if response.status >= 400
            else None
        ),
    )
    return failed


def overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_staff_pages_reflow_down_to_320_px_and_the_header_works(
    live_server, browser, queue_data, artefacts
):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    failed = watch_requests(page)
    sign_in(page, live_server.url)
    pages = {
        "queue": f"{live_server.url}/work/",
        "documents": f"{live_server.url}/",
        "document": f"{live_server.url}/documents/{queue_data.public_id}/",
    }
    current = {"queue": "Work queue", "documents": "Documents", "document": "Documents"}

    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state("networkidle")
            # The header's JavaScript has run (it marks its root once started).
            expect(page.locator("header.nhsuk-header")).to_have_attribute(
                "data-nhsuk-header-init", ""
            )
            scroll_width, inner_width = overflow(page)
            page.screenshot(
                path=artefacts / f"reflow-{name}-{width}.png", full_page=True
            )
            assert scroll_width <= inner_width, (name, width, scroll_width)
            marked = page.locator(
                ".nhsuk-header__navigation-list a[aria-current], "
                ".nhsuk-header__menu-list a[aria-current]"
            )
            expect(marked).to_have_count(1)
            expect(marked).to_contain_text(current[name])
            expect(marked).to_have_attribute(
                "aria-current", "true" if name == "document" else "page"
            )
        if width >= 1024:
            page.goto(pages["queue"])
            table = page.locator("#work-items")
            expect(table.locator("[data-urgent]")).to_contain_text("Overdue by 1 day")
            box = table.bounding_box()
            assert box["x"] + box["width"] <= width, (width, box)
            for heading in ("Opened", "Due"):
                cell = table.get_by_role("columnheader", name=heading)
                expect(cell).to_be_visible()
                edge = cell.bounding_box()
                assert edge["x"] + edge["width"] <= width, (heading, width, edge)

    # At 320 px the links that do not fit move into the header's "More" menu.
    page.goto(pages["queue"])
    toggle = page.locator(".nhsuk-header__menu-toggle")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    menu = page.locator(".nhsuk-header__menu-list")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("link").first).to_be_visible()
    page.screenshot(path=artefacts / "reflow-menu-open-320.png")
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_hidden()

    # Filters through htmx: invalid input is reported in a focused error summary
    # and the title; its link leads to the field; corrected, the filter applies.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(pages["queue"])
    page.get_by_label("Destination practice (ODS code)").fill("not a code")
    page.get_by_role("button", name="Apply filters").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: Team queue"))
    summary.get_by_role("link", name=re.compile("Enter an ODS code")).click()
    field = page.get_by_label("Destination practice (ODS code)")
    expect(field).to_be_focused()
    field.fill("A81001")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#filtered-by")).to_contain_text("Destination: A81001")
    expect(page.locator(".nhsuk-error-summary")).to_have_count(0)
    expect(page).to_have_title(re.compile(r"^Team queue"))
    assert "destination=A81001" in page.url

    assert failed == []
    context.close()
