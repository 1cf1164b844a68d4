"""The Clinical Safety Case Report draft (DCB0129): the hazard log and the results of
a test run (pytest's JUnit XML), rendered as HTML and as PDF through WeasyPrint.

A control's status is that of its tests in the run: passed only when every test it
names ran and passed; failed when any failed; not run when any is missing from the
run. A hazard is open in the report while its status is open, while any of its
controls is not passed, or while its residual risk is above acceptable.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from docflow.assurance.hazards import (
    ACCEPTABLE,
    Hazard,
    HazardLog,
    SuiteInventory,
    node_id_base,
)

PASSED, FAILED, SKIPPED, NOT_RUN = "passed", "failed", "skipped", "not run"


@dataclass(frozen=True)
class TestRun:
    """What one pytest run reported, by node id without parameters."""

    outcomes: dict[str, str]
    tests: int
    failures: int
    skipped: int
    ran_at: str

    def outcome(self, node_id: str) -> str:
        return self.outcomes.get(node_id_base(node_id), NOT_RUN)


def _node_id(classname: str, name: str) -> str:
    """pytest's JUnit ``classname`` (``tests.app.test_x`` or ``...test_x.TestY``)
    and ``name`` back to a node id."""
    parts = classname.split(".")
    if len(parts) > 1 and parts[-1][:1].isupper():
        module, cls = parts[:-1], [parts[-1]]
    else:
        module, cls = parts, []
    return "::".join(["/".join(module) + ".py", *cls, node_id_base(name)])


def junit_results_read(path: Path) -> TestRun:
    """Each test's outcome from a JUnit XML file; a parametrised test failed when
    any of its cases failed, skipped when all were skipped."""
    root = ElementTree.parse(path).getroot()  # noqa: S314 (our own test run's file)
    outcomes: dict[str, list[str]] = {}
    for case in root.iter("testcase"):
        node_id = _node_id(case.get("classname", ""), case.get("name", ""))
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = FAILED
        elif case.find("skipped") is not None:
            outcome = SKIPPED
        else:
            outcome = PASSED
        outcomes.setdefault(node_id, []).append(outcome)
    merged = {}
    for node_id, seen in outcomes.items():
        if FAILED in seen:
            merged[node_id] = FAILED
        elif all(o == SKIPPED for o in seen):
            merged[node_id] = SKIPPED
        else:
            merged[node_id] = PASSED
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    suite = suite if suite is not None else root
    return TestRun(
        outcomes=merged,
        tests=sum(len(v) for v in outcomes.values()),
        failures=sum(v.count(FAILED) for v in outcomes.values()),
        skipped=sum(v.count(SKIPPED) for v in outcomes.values()),
        ran_at=suite.get("timestamp", ""),
    )


def code_version() -> str:
    """The package version from pyproject.toml, with the commit when in a git
    checkout (``0.1.0+g1a2b3c4``)."""
    base = Path(settings.BASE_DIR)
    version = tomllib.loads((base / "pyproject.toml").read_text())["project"]["version"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=base,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+g{commit}" if commit else version


def _combined(outcomes: Iterable[str]) -> str:
    outcomes = list(outcomes)
    if not outcomes:
        return NOT_RUN
    if FAILED in outcomes:
        return FAILED
    if NOT_RUN in outcomes:
        return NOT_RUN
    if all(o == SKIPPED for o in outcomes):
        return SKIPPED
    return PASSED


def _hazard_row(hazard: Hazard, run: TestRun, inventory: SuiteInventory) -> dict:
    controls = []
    for control in hazard.controls:
        tests = [{"id": t, "outcome": run.outcome(t)} for t in control.tests]
        controls.append(
            {
                "description": control.description,
                "tests": tests,
                "status": _combined(t["outcome"] for t in tests)
                if tests
                else "no test",
            }
        )
    marked = [
        {"id": t, "outcome": run.outcome(t)} for t in inventory.marked_for(hazard.id)
    ]
    if marked:
        controls.append(
            {
                "description": "Tests marked for this hazard",
                "tests": marked,
                "status": _combined(t["outcome"] for t in marked),
            }
        )
    tested = [c for c in controls if c["tests"]]
    return {
        "hazard": hazard,
        "controls": controls,
        "status": _combined(c["status"] for c in tested),
        "above_acceptable": hazard.residual.rating > ACCEPTABLE,
    }


def safety_case_context(
    *,
    log: HazardLog,
    run: TestRun,
    inventory: SuiteInventory,
    version: str,
    generated_at: datetime | None = None,
) -> dict:
    """Everything the report shows, from the log, the run and the suite."""
    rows = [_hazard_row(h, run, inventory) for h in log.hazards]
    open_issues = []
    for row in rows:
        hazard = row["hazard"]
        if row["status"] != PASSED:
            open_issues.append(
                f"{hazard.id} {hazard.title}: controls {row['status']} in this run"
            )
        if row["above_acceptable"]:
            open_issues.append(
                f"{hazard.id} {hazard.title}: residual risk "
                f"{hazard.residual.rating} ({hazard.residual.name}) accepted with "
                f"justification: {hazard.residual_justification}"
            )
    summary: dict[int, int] = {}
    for hazard in log.hazards:
        summary[hazard.residual.rating] = summary.get(hazard.residual.rating, 0) + 1
    return {
        "system": log.system,
        "rows": rows,
        "run": run,
        "version": version,
        "generated_at": generated_at or timezone.now(),
        "residual_summary": sorted(summary.items()),
        "open_issues": open_issues,
        "hazards_open": sum(1 for h in log.hazards if h.status == "Open"),
    }


def safety_case_html(context: dict) -> str:
    """The report as one self-contained HTML page (styles inline, nothing fetched)."""
    return render_to_string("docflow/safety_case_report.html", context)


def safety_case_write(*, html: str, directory: Path, stem: str) -> tuple[Path, Path]:
    """Write the HTML and its PDF (WeasyPrint) side by side; return both paths."""
    from weasyprint import HTML

    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / f"{stem}.html"
    pdf_path = directory / f"{stem}.pdf"
    html_path.write_text(html, encoding="utf-8")
    HTML(string=html, base_url=str(directory)).write_pdf(pdf_path)
    return html_path, pdf_path
