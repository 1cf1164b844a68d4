"""A real, small pytest run for the safety case report's tests: three tests that
prove controls of HAZ-011 and HAZ-016, run in a child pytest that writes JUnit XML.
None of them uses the database, so the child never touches the parent's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

SMALL_RUN = (
    "tests/audit/test_redaction.py::test_logged_argument_is_redacted_before_any_handler_sees_it",
    "tests/audit/test_redaction.py::test_formatted_exception_output_carries_no_number",
    "tests/mesh/test_send_document.py::test_the_message_asks_for_both_acknowledgements",
)


def small_test_run(directory: Path) -> Path:
    """Run SMALL_RUN in a child pytest; return its JUnit XML file."""
    junit = directory / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *SMALL_RUN,
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, (
        completed.stdout[-3000:] + completed.stderr[-3000:]
    )
    return junit
