"""Logging of refused requests. Loaded by the logging configuration before the
apps are: it imports nothing of docflow's."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied

_REFUSAL = f"{PermissionDenied.__module__}.{PermissionDenied.__qualname__}"


def _is_refusal(record: logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[1] is not None:
        return isinstance(record.exc_info[1], PermissionDenied)
    # The redacting record factory (audit.redaction) has already turned the
    # exception into text: its last line names the exception that was raised.
    if record.exc_text:
        last = record.exc_text.rstrip().rsplit("\n", 1)[-1]
        return last == _REFUSAL or last.startswith(f"{_REFUSAL}:")
    return False


class ExpectedRefusalFilter(logging.Filter):
    """On ``django.request``: a refusal (PermissionDenied answered with a 403) is an
    expected answer, so its warning line stays and its traceback goes. Every other
    record, every error above all, passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and _is_refusal(record):
            record.exc_info = None
            record.exc_text = None
        return True
