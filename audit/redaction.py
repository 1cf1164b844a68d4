"""Keep NHS numbers out of logs.

A 10-digit run (or the 3-3-4 spaced/dashed form) whose modulus 11 check digit is
valid is replaced by ``[NHS-NUMBER]`` in the message, its arguments and any
exception text, before any handler sees the record. Fields passed with ``extra=``
(Django's SQL log puts the raw ``sql`` and ``params`` there) are attached after
the record is made, so the handler filter scrubs those.
"""

from __future__ import annotations

import logging
import re
import traceback

REDACTED = "[NHS-NUMBER]"
_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{3})([ -]?)([0-9]{3})\2([0-9]{4})(?![0-9])")
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
# Attributes every record has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))
) | {"message", "asctime", "taskName", "_nhs_redacted"}


def _check_digit_valid(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:9], _WEIGHTS, strict=True))
    check = 11 - (total % 11)
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def redact_nhs_numbers(text: str) -> str:
    """Replace every valid NHS number in ``text``; other digit runs are left alone."""

    def replace(match: re.Match[str]) -> str:
        digits = match.group(1) + match.group(3) + match.group(4)
        return REDACTED if _check_digit_valid(digits) else match.group(0)

    return _CANDIDATE.sub(replace, text)


def pseudonymise_nhs_numbers(text: str) -> str:
    """Replace every valid NHS number in free text with ``[nhs:<keyed hash>]``, the
    same key :func:`audit.pseudonyms.subject_key` gives, so a stored reason names
    the patient only in a form that can be matched but not read back."""
    from audit.pseudonyms import subject_key

    def replace(match: re.Match[str]) -> str:
        digits = match.group(1) + match.group(3) + match.group(4)
        if not _check_digit_valid(digits):
            return match.group(0)
        return f"[nhs:{subject_key(digits)}]"

    return _CANDIDATE.sub(replace, text)


def _redact_extra_fields(record: logging.LogRecord) -> None:
    for name, value in list(vars(record).items()):
        if name in _STANDARD_ATTRIBUTES or value is None or isinstance(value, bool):
            continue
        try:
            text = value if isinstance(value, str) else str(value)
        except Exception:  # a broken __str__ must not stop logging
            text = ""
        redacted = redact_nhs_numbers(text)
        if redacted != text:
            setattr(record, name, redacted)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Rewrite one record in place so no later formatter can reveal a number."""
    # Extra fields may have been added since the record was made: check every time.
    _redact_extra_fields(record)
    if getattr(record, "_nhs_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not stop logging
        message = str(record.msg)
    record.msg = redact_nhs_numbers(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact_nhs_numbers(text)
        # Handlers that format exc_info themselves would see the raw values.
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact_nhs_numbers(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_nhs_numbers(record.stack_info)
    record._nhs_redacted = True
    return record


class NhsNumberRedactionFilter(logging.Filter):
    """Logging filter form, for handlers configured in LOGGING."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = False


def install_log_record_redaction() -> None:
    """Wrap the record factory so every record, whatever its handler, is redacted."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
