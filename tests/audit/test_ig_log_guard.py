"""The suite-wide NHS-number log guard finds leaks, and fails a run that has one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.nhs_number_log_guard import (
    NhsNumberLogGuard,
    mask_nhs_numbers,
    nhs_numbers_in,
    record_leaks,
)
from tests.samples import INVALID_CHECKSUM_NHS_NUMBER, VALID_NHS_NUMBER

PROJECT = Path(__file__).resolve().parents[2]


def _record(msg, args=(), **extra) -> logging.LogRecord:
    # Built directly, not through a logger: the project's record factory would
    # redact the number before the guard could see it.
    record = logging.LogRecord("leaky", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("form", ["9434765919", "943 476 5919", "943-476-5919"])
def test_valid_numbers_are_found_plain_spaced_and_dashed(form):
    assert nhs_numbers_in(f"patient {form} seen") == [form]


@pytest.mark.parametrize(
    "text",
    [
        f"patient {INVALID_CHECKSUM_NHS_NUMBER}",  # wrong check digit
        "order 19434765919 shipped",  # part of a longer run
        "943 476-5919",  # mixed separators are not the 3-3-4 form
        "took 123 ms",
    ],
)
def test_other_digit_runs_are_not_numbers(text):
    assert nhs_numbers_in(text) == []


def test_a_number_in_the_message_args_exception_or_extra_is_a_leak():
    assert record_leaks(_record("patient %s", (VALID_NHS_NUMBER,))) == [
        "message",
        "args",
    ]
    assert record_leaks(
        _record("seen", exc_text=f"ValueError: {VALID_NHS_NUMBER}")
    ) == ["exc_text"]
    assert record_leaks(_record("query", params=(VALID_NHS_NUMBER,))) == [
        "extra:params"
    ]
    assert record_leaks(_record("document %s sent", ("9990000019",))) == []


def test_the_guard_keeps_offenders_with_the_number_masked():
    guard = NhsNumberLogGuard()
    guard.current_test = "tests/x.py::test_y"
    guard.handle(_record("patient %s", ("943 476 5919",)))
    guard.handle(_record("document %s sent", ("0f1c",)))

    assert len(guard.leaks) == 1
    leak = guard.leaks[0]
    assert (leak.logger, leak.level, leak.test) == (
        "leaky",
        "WARNING",
        "tests/x.py::test_y",
    )
    assert leak.message == "patient [NHS-NUMBER]"
    assert mask_nhs_numbers(f"a {VALID_NHS_NUMBER} b") == "a [NHS-NUMBER] b"


LEAKY_TESTS = """
import logging

QUIET = logging.getLogger("quiet.worker")
QUIET.propagate = False
QUIET.addHandler(logging.NullHandler())


def test_logs_through_the_root():
    logging.getLogger("app").warning("patient %s", "943 476 5919")


def test_logs_through_a_logger_that_does_not_propagate():
    QUIET.error("document for 9434765919 failed")


def test_logs_nothing_identifying():
    logging.getLogger("app").warning("document %s sent", "9990000019")
"""


def _run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY_TESTS))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_"))
    }
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:django",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.nhs_number_log_guard",
            "-q",
            *args,
            str(tmp_path / "test_leaky.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_run_whose_tests_pass_fails_when_a_log_record_carries_a_number(tmp_path):
    result = _run_pytest(tmp_path)

    assert "3 passed" in result.stdout, result.stdout
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "NHS numbers in log records" in result.stdout
    assert "test_leaky.py::test_logs_through_the_root: logger 'app'" in result.stdout
    assert "logger 'quiet.worker' ERROR" in result.stdout
    assert "2 log record(s) carried a valid NHS number." in result.stdout
    # The report names the place, never the number.
    assert "9434765919" not in result.stdout
    assert "943 476 5919" not in result.stdout


def test_leaks_found_by_xdist_workers_fail_the_whole_run(tmp_path):
    result = _run_pytest(tmp_path, "-n", "2")

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "2 log record(s) carried a valid NHS number." in result.stdout
