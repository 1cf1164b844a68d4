"""The accessibility statement's facts, from the browser suite's axe results.

tests/e2e/test_accessibility.py runs axe-core (WCAG 2.2 A and AA rules) on every
staff and admin page at two widths and writes what it found as JSON; a full run can
replace the committed last-known copy (DOCFLOW_ACCESSIBILITY_RESULTS). The service
is "fully compliant" only when that run covered every page and found no
violation on any.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils.dateparse import parse_datetime


@dataclass(frozen=True)
class Finding:
    page: str
    viewport: str
    rule: str
    impact: str
    help: str


@dataclass(frozen=True)
class AccessibilityResults:
    tested_at: datetime | None
    axe_version: str
    standard: str
    pages: tuple[str, ...]
    viewports: tuple[str, ...]
    findings: tuple[Finding, ...]
    complete: bool = True

    @property
    def compliance(self) -> str:
        """Full compliance is claimed only from a run that covered every page."""
        if not self.pages:
            return "not yet tested"
        if self.findings:
            return "partially compliant"
        return "fully compliant" if self.complete else "not fully tested"


def accessibility_results_path() -> Path:
    return Path(settings.DOCFLOW_ACCESSIBILITY_RESULTS)


def accessibility_results_read(path: Path | None = None) -> AccessibilityResults:
    """The last recorded axe run; no file (or an unreadable one) is "not yet tested",
    never a claim of compliance."""
    path = path or accessibility_results_path()
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    results = raw.get("results", [])
    findings = tuple(
        Finding(
            page=entry["page"],
            viewport=entry["viewport"],
            rule=violation["id"],
            impact=violation.get("impact") or "",
            help=violation.get("help", ""),
        )
        for entry in results
        for violation in entry.get("violations", [])
    )
    return AccessibilityResults(
        tested_at=parse_datetime(raw.get("tested_at", "") or ""),
        axe_version=raw.get("axe_version", ""),
        standard=raw.get("standard", "WCAG 2.2 AA"),
        pages=tuple(sorted({entry["page"] for entry in results})),
        viewports=tuple(sorted({entry["viewport"] for entry in results})),
        findings=findings,
        complete=bool(raw.get("complete", True)),
    )
