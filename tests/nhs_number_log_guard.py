"""Suite-wide guard: no log record may carry a valid NHS number (DESIGN §6).

A handler on the root logger and on every logger that does not propagate (django-q
keeps its own handler) checks each record: the fully formatted message, the raw
arguments, the exception and stack text, and any field passed with ``extra=``.

On the root it comes last, so it sees a record as the project's handlers output it:
fields passed with ``extra=`` (Django's SQL log puts the raw ``sql`` and ``params``
there) are scrubbed by the console handler's redaction filter, not when the record
is made. ``NHS_LOG_GUARD_STRICT=1`` puts it first instead, to show what a handler
without that filter would see.
A 10-digit run, plain or in 3-3-4 groups split by spaces or dashes, counts when its
modulus 11 check digit is valid (the ``nhs-number`` package decides). Offenders are
printed at the end and the session fails.

Under pytest-xdist each worker hands its offenders to the controller through
``workeroutput``, so ``-n 2`` fails the same way a single process does.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from dataclasses import asdict, dataclass
from typing import Any

import nhs_number
import pytest

_TEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{3}([ -]?)[0-9]{3}\1[0-9]{4}(?![0-9])")
_MASK = "[NHS-NUMBER]"
_WORKER_KEY = "nhs_number_log_leaks"
# Attributes every record has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))
) | {"message", "asctime", "taskName", "_nhs_redacted"}


def nhs_numbers_in(text: str) -> list[str]:
    """Every digit group in ``text`` that is a valid NHS number."""
    found = []
    for match in _TEN_DIGITS.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        if nhs_number.is_valid(digits):
            found.append(match.group(0))
    return found


def mask_nhs_numbers(text: str) -> str:
    """The text with every valid NHS number replaced, for printing offenders."""
    for number in nhs_numbers_in(text):
        text = text.replace(number, _MASK)
    return text


def _text(value: Any) -> str:
    try:
        return value if isinstance(value, str) else repr(value)
    except Exception:  # a broken __repr__ must not break the guard
        return ""


def record_leaks(record: logging.LogRecord) -> list[str]:
    """Where in the record a valid NHS number appears (empty: the record is clean)."""
    places: list[tuple[str, str]] = []
    try:
        places.append(("message", record.getMessage()))
    except Exception:
        places.append(("message", _text(record.msg)))
    if record.args:
        places.append(("args", _text(record.args)))
    if record.exc_info and record.exc_info[0] is not None:
        places.append(
            ("exc_info", "".join(traceback.format_exception(*record.exc_info)))
        )
    if record.exc_text:
        places.append(("exc_text", record.exc_text))
    if record.stack_info:
        places.append(("stack_info", record.stack_info))
    for name, value in vars(record).items():
        if name not in _STANDARD_ATTRIBUTES and value is not None:
            places.append((f"extra:{name}", _text(value)))
    return [where for where, text in places if text and nhs_numbers_in(text)]


@dataclass(frozen=True)
class Leak:
    logger: str
    level: str
    where: str
    message: str  # with the numbers masked
    test: str


class NhsNumberLogGuard(logging.Handler):
    """Collects every record that carries a valid NHS number."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.leaks: list[Leak] = []
        self.current_test = "(outside any test)"
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        # A record reaching both a non-propagating logger and the root is one leak.
        if id(record) in self._seen:
            return
        where = record_leaks(record)
        if not where:
            return
        self._seen.add(id(record))
        try:
            message = record.getMessage()
        except Exception:
            message = _text(record.msg)
        self.leaks.append(
            Leak(
                logger=record.name,
                level=record.levelname,
                where=", ".join(where),
                message=mask_nhs_numbers(message)[:300],
                test=self.current_test,
            )
        )

    def attach(self) -> None:
        """Last (strict: first) handler on the root, and on every logger that does
        not propagate."""
        root = logging.getLogger()
        if self in root.handlers:
            root.removeHandler(self)
        if os.environ.get("NHS_LOG_GUARD_STRICT") == "1":
            root.handlers.insert(0, self)
        else:
            root.addHandler(self)
        for logger in list(logging.root.manager.loggerDict.values()):
            if (
                isinstance(logger, logging.Logger)
                and not logger.propagate
                and self not in logger.handlers
            ):
                logger.addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)
        for logger in list(logging.root.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger) and self in logger.handlers:
                logger.removeHandler(self)


_guard = NhsNumberLogGuard()
_from_workers: list[Leak] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _guard.attach()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    # Django's set-up and tests that configure logging may replace root handlers,
    # and loggers made since the last test may not propagate: attach again.
    _guard.attach()
    _guard.current_test = item.nodeid
    try:
        return (yield)
    finally:
        _guard.current_test = "(between tests)"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: collect what a worker found."""
    output = getattr(node, "workeroutput", None) or {}
    _from_workers.extend(Leak(**leak) for leak in output.get(_WORKER_KEY, []))


def all_leaks() -> list[Leak]:
    return [*_guard.leaks, *_from_workers]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    _guard.detach()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_WORKER_KEY] = [asdict(leak) for leak in _guard.leaks]
    leaks = all_leaks()
    if not leaks:
        return
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or workeroutput is not None:
        return
    reporter.write_sep("=", "NHS numbers in log records", red=True, bold=True)
    for leak in leaks:
        reporter.write_line(
            f"{leak.test}: logger {leak.logger!r} {leak.level} ({leak.where}): "
            f"{leak.message}"
        )
    reporter.write_line(f"{len(leaks)} log record(s) carried a valid NHS number.")
