"""The clinical safety case report, rendered from a real test run, shows in Chromium
as a page with its hazards and their test status; a full-page screenshot is kept as
an artefact (test-artifacts/e2e/safety-case-report.png)."""

from __future__ import annotations

import io

from django.core.management import call_command

from tests.safety_run import small_test_run


def test_the_safety_case_report_renders_in_a_browser(tmp_path, page, artefacts):
    junit = small_test_run(tmp_path)
    out = io.StringIO()
    call_command("safety_report", junit=junit, output_dir=tmp_path, stdout=out)
    html_path = out.getvalue().split()[0]

    page.goto(f"file://{html_path}")
    assert page.title().startswith("Clinical Safety Case Report (draft)")
    assert page.locator("h1").inner_text() == "Clinical Safety Case Report"
    assert page.locator("#summary tbody tr").count() >= 16
    passed = page.locator("#HAZ-011 td.status-passed")
    assert passed.count() >= 1
    assert passed.first.is_visible()
    page.screenshot(path=artefacts / "safety-case-report.png", full_page=True)
    assert (artefacts / "safety-case-report.png").stat().st_size > 10_000
