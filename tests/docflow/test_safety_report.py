"""manage.py safety_report renders the clinical safety case report draft from the
hazard log and a real test run's JUnit XML, as HTML and as a PDF that opens."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pypdf import PdfReader

from docflow.assurance.safety_case import code_version, junit_results_read
from tests.safety_run import SMALL_RUN, small_test_run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report's two files and what the command printed, from one real run."""
    directory = tmp_path_factory.mktemp("safety")
    junit = small_test_run(directory)
    out = io.StringIO()
    call_command("safety_report", junit=junit, output_dir=directory / "out", stdout=out)
    html_path, pdf_path = out.getvalue().split()
    return {"junit": junit, "html": html_path, "pdf": pdf_path}


def hazard_section(html: str, hazard_id: str) -> str:
    match = re.search(
        rf'<div class="hazard" id="{hazard_id}">(.*?)</div>', html, flags=re.S
    )
    assert match, hazard_id
    return match.group(1)


def test_the_junit_file_of_the_run_names_each_test_that_ran_as_passed(report):
    run = junit_results_read(report["junit"])
    assert run.outcomes == dict.fromkeys(SMALL_RUN, "passed")
    assert (run.tests, run.failures) == (3, 0)


def test_the_html_report_is_dated_versioned_and_shows_each_controls_test_status(
    report,
):
    html = Path(report["html"]).read_text(encoding="utf-8")
    assert f'<td id="version">{code_version()}</td>' in html
    assert re.search(r'id="generated-at">\d{1,2} \w+ 20\d\d \d\d:\d\d UTC', html)
    assert "3 tests, 0 failed, 0 skipped" in html
    for heading in (
        "System description",
        "Intended use",
        "Hazards and their controls",
        "Residual risk summary",
        "Open issues",
    ):
        assert heading in html
    redaction = hazard_section(html, "HAZ-011")
    # The logging control's two tests ran and passed; the URL control's did not run.
    assert re.search(
        r"A logging filter redacts NHS numbers.*?status-passed\">passed</td>",
        redaction,
        flags=re.S,
    )
    assert re.search(
        r"URLs use public UUIDs only.*?status-not-run\">not run</td>",
        redaction,
        flags=re.S,
    )
    # HAZ-015's residual risk stands on its recorded justification, listed as open.
    assert "HAZ-015 Outage with no alert: residual risk 3" in html


def test_the_pdf_opens_and_carries_the_report(report):
    reader = PdfReader(report["pdf"])
    assert len(reader.pages) > 3
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Clinical Safety Case Report" in text
    assert "HAZ-016" in text
    assert code_version() in text


def test_a_failed_and_a_skipped_case_are_read_as_such(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="4" timestamp="2026-12-02T06:00">'
        '<testcase classname="tests.audit.test_x" name="test_a[1]"/>'
        '<testcase classname="tests.audit.test_x" name="test_a[2]">'
        '<failure message="boom"/></testcase>'
        '<testcase classname="tests.audit.test_x" name="test_b"><skipped/></testcase>'
        '<testcase classname="tests.audit.test_x.TestY" name="test_c"/>'
        "</testsuite></testsuites>"
    )
    run = junit_results_read(junit)
    assert run.outcomes == {
        "tests/audit/test_x.py::test_a": "failed",
        "tests/audit/test_x.py::test_b": "skipped",
        "tests/audit/test_x.py::TestY::test_c": "passed",
    }
    assert run.outcome("tests/audit/test_x.py::test_gone") == "not run"


def test_a_missing_junit_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="No JUnit XML"):
        call_command("safety_report", junit=tmp_path / "none.xml")
