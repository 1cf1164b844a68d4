"""The staff pages under their real Content-Security-Policy in Chromium: nothing is
blocked, and the NHS.UK frontend and htmx still start (their set-up moved from
inline script to static files)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from tests.casework.factories import CLINICAL_ADMIN, directory, document_in, open_item
from tests.factories import SendingOrganisationFactory, UserFactory

CHROMIUM = os.environ.get("DOCFLOW_E2E_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct-horse-battery-staple"
INJECT = (
    "() => { const s = document.createElement('script');"
    " s.textContent = 'window.injected = true'; document.body.append(s); }"
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("reference_data"),
]


def browse(base_url: str, paths: list[str]) -> dict:
    """Sign in, visit each page and report what the browser saw. Runs in its own
    thread: Playwright's sync API allows one instance per thread, and the browser
    tests may hold one open in the main thread."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"violations": [], "pages": {}}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_context().new_page()
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda message: (
                seen["violations"].append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.on("pageerror", lambda error: seen["violations"].append(str(error)))
        page.goto(f"{base_url}/accounts/login/")
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base_url}/work/")  # sign-in lands on the queue
        for path in paths:
            page.goto(f"{base_url}{path}")
            page.wait_for_load_state("networkidle")
            seen["pages"][path] = {
                "classes": page.evaluate("document.body.className").split(),
                "htmx": page.evaluate("typeof window.htmx"),
            }
        page.goto(f"{base_url}/work/")
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_load_state("networkidle")
        seen["allow_eval"] = page.evaluate("window.htmx.config.allowEval")
        seen["before_control"] = list(seen["violations"])
        # Control: an inline script is refused, and the refusal is seen.
        with page.expect_console_message(
            lambda message: "Content Security Policy" in message.text
        ):
            page.evaluate(INJECT)
        seen["injected_ran"] = page.evaluate("window.injected === true")
        browser.close()
    return seen


def test_staff_pages_run_under_the_policy_with_nothing_blocked(live_server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap-system")
    organisation = SendingOrganisationFactory(ods_code="RX1")
    directory("A81001", "A81002")
    item = open_item(
        document_in("rejected", sending_organisation=organisation, reason="REJ01")
    )
    user = UserFactory(username="ada", password=PASSWORD)
    user.groups.add(Group.objects.get(name=CLINICAL_ADMIN))
    assign_perm("docflow.access_documents", user, organisation)
    paths = ["/", "/work/", f"/work/items/{item.public_id}/"]

    with ThreadPoolExecutor(max_workers=1) as pool:
        seen = pool.submit(browse, live_server.url, paths).result(timeout=120)

    assert seen["before_control"] == []
    for path in paths:
        assert {"js-enabled", "nhsuk-frontend-supported"} <= set(
            seen["pages"][path]["classes"]
        ), path
        assert seen["pages"][path]["htmx"] == "object", path
    assert seen["allow_eval"] is False
    assert seen["injected_ran"] is False
    assert len(seen["violations"]) > len(seen["before_control"])
