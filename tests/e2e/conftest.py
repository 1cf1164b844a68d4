"""Browser tests: Playwright's sync API driving Debian's Chromium at a live server.

Playwright's sync API runs an event loop in the test thread, which Django would
otherwise refuse ORM calls from; the live server runs in its own thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("DOCFLOW_E2E_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser():
    """One Chromium per test session (never a downloaded one: Debian's)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap-system")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artefacts() -> Path:
    """Where screenshots are kept (git-ignored, uploaded by CI as artefacts)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS
