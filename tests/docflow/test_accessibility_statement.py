"""The accessibility statement at /accessibility/ is open to everyone and says what
the last axe run of the browser suite found, in the regulations' headings."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from docflow.assurance.accessibility import accessibility_results_read

pytestmark = pytest.mark.django_db

HEADINGS = (
    "How accessible this service is",
    "Feedback and contact information",
    "Reporting accessibility problems with this service",
    "Enforcement procedure",
    "Technical information about this service",
    "Compliance status",
    "Non-accessible content",
    "Disproportionate burden",
    "What we're doing to improve accessibility",
    "Preparation of this accessibility statement",
)


def write_results(path, *, violations_on=(), complete=True):
    results = [
        {
            "page": page,
            "viewport": viewport,
            "violations": [
                {"id": "color-contrast", "impact": "serious", "help": "Contrast"}
            ]
            if (page, viewport) in violations_on
            else [],
        }
        for page in ("work-queue", "sign-in")
        for viewport in ("1280x900", "320x568")
    ]
    path.write_text(
        json.dumps(
            {
                "tested_at": "2026-11-30T10:00:00+00:00",
                "axe_version": "4.14.1",
                "standard": "WCAG 2.2 AA",
                "results": results,
                "complete": complete,
            }
        )
    )
    return path


def test_the_statement_is_open_without_signing_in_and_has_every_heading(client):
    response = client.get(reverse("accessibility"))
    assert response.status_code == 200
    body = response.content.decode()
    for heading in HEADINGS:
        assert heading in body, heading
    assert 'href="/accessibility/"' in body  # the footer link on every page


def test_a_clean_run_makes_the_service_fully_compliant(client, settings, tmp_path):
    settings.DOCFLOW_ACCESSIBILITY_RESULTS = str(write_results(tmp_path / "a.json"))
    body = client.get(reverse("accessibility")).content.decode()
    assert "This service is fully compliant" in body
    assert "last tested on 30 November 2026" in body
    assert "axe-core 4.14.1" in body
    assert 'id="findings"' not in body


def test_a_violation_makes_it_partially_compliant_and_lists_the_page(
    client, settings, tmp_path
):
    path = write_results(tmp_path / "a.json", violations_on={("sign-in", "320x568")})
    settings.DOCFLOW_ACCESSIBILITY_RESULTS = str(path)
    body = client.get(reverse("accessibility")).content.decode()
    assert "partially compliant" in body
    assert "fully compliant" not in body
    assert "Contrast (color-contrast)" in body
    assert '<td class="nhsuk-table__cell">sign-in</td>' in body


def test_a_run_that_missed_pages_claims_no_full_compliance(client, settings, tmp_path):
    path = write_results(tmp_path / "a.json", complete=False)
    settings.DOCFLOW_ACCESSIBILITY_RESULTS = str(path)
    body = client.get(reverse("accessibility")).content.decode()
    assert "has not yet been fully tested against" in body
    assert "fully compliant" not in body


def test_no_results_claim_nothing(client, settings, tmp_path):
    settings.DOCFLOW_ACCESSIBILITY_RESULTS = str(tmp_path / "missing.json")
    body = client.get(reverse("accessibility")).content.decode()
    assert "has not yet been tested against" in body
    assert "compliant with" not in body


def test_the_committed_results_are_of_the_browser_suites_pages():
    from tests.e2e.test_accessibility import PAGES, VIEWPORTS

    results = accessibility_results_read()
    assert "accessibility-statement" in results.pages
    assert set(results.pages) <= set(PAGES)
    assert set(results.viewports) == set(VIEWPORTS)
    # A copy that misses a page never claims full compliance.
    assert results.complete == (set(results.pages) == set(PAGES))
