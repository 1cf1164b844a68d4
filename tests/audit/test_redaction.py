import io
import logging

import pytest

from audit.redaction import REDACTED, NhsNumberRedactionFilter, redact_nhs_numbers
from tests.audit.leaks import valid_nhs_numbers_in
from tests.samples import (
    INVALID_CHECKSUM_NHS_NUMBER,
    OTHER_VALID_NHS_NUMBER,
    VALID_NHS_NUMBER,
)

logger = logging.getLogger("tests.audit.redaction")


@pytest.mark.parametrize(
    "written",
    ["9990000018", "999 000 0018", "999-000-0018"],
    ids=["plain", "spaced", "dashed"],
)
def test_valid_nhs_numbers_are_redacted_in_every_written_form(written):
    redacted = redact_nhs_numbers(f"patient {written} was discharged")

    assert redacted == f"patient {REDACTED} was discharged"


def test_every_valid_number_in_a_text_is_redacted():
    text = (
        f"merge {VALID_NHS_NUMBER} into {OTHER_VALID_NHS_NUMBER};nhs={VALID_NHS_NUMBER}"
    )

    assert (
        redact_nhs_numbers(text) == f"merge {REDACTED} into {REDACTED};nhs={REDACTED}"
    )


@pytest.mark.parametrize(
    "text",
    [
        INVALID_CHECKSUM_NHS_NUMBER,
        "999 000 0019",
        "99900000180",
        "19990000018",
        "order 999000001800 shipped",
        "999 000-0018",
        "999000001",
    ],
    ids=[
        "bad-check-digit",
        "bad-check-digit-spaced",
        "eleven-digits",
        "valid-number-inside-longer-run",
        "twelve-digits",
        "mixed-separators",
        "nine-digits",
    ],
)
def test_digit_runs_that_are_not_nhs_numbers_are_left_alone(text):
    assert redact_nhs_numbers(text) == text


def test_logged_argument_is_redacted_before_any_handler_sees_it(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)

    logger.info("Looking up patient %s", VALID_NHS_NUMBER)

    [record] = caplog.records
    assert record.getMessage() == f"Looking up patient {REDACTED}"
    assert not record.args
    assert VALID_NHS_NUMBER not in caplog.text
    assert valid_nhs_numbers_in(caplog.text) == []


def test_spaced_number_inside_a_logged_exception_is_redacted(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)

    try:
        raise LookupError("no registration for 999 000 0018 at A81001")
    except LookupError:
        logger.exception("PDS lookup failed for %s", "999-000-0018")

    [record] = caplog.records
    assert record.getMessage() == f"PDS lookup failed for {REDACTED}"
    assert record.exc_text.startswith("Traceback (most recent call last)")
    assert f"LookupError: no registration for {REDACTED} at A81001" in record.exc_text
    assert valid_nhs_numbers_in(record.exc_text) == []
    assert "LookupError" in caplog.text
    assert valid_nhs_numbers_in(caplog.text) == []


def test_formatted_exception_output_carries_no_number(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"bad patient {VALID_NHS_NUMBER}")
        except ValueError:
            logger.exception("intake failed")
    finally:
        logger.removeHandler(handler)

    output = stream.getvalue()
    assert f"ValueError: bad patient {REDACTED}" in output
    assert valid_nhs_numbers_in(output) == []


def test_redaction_filter_scrubs_extra_fields_a_formatter_may_print():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s | %(sql)s | %(params)s"))
    handler.addFilter(NhsNumberRedactionFilter())
    sql_logger = logging.getLogger("tests.audit.redaction.sql")
    sql_logger.addHandler(handler)
    sql_logger.setLevel(logging.DEBUG)
    sql_logger.propagate = False
    try:
        sql_logger.debug(
            "query ran",
            extra={
                "sql": f"SELECT 1 WHERE nhs = '{VALID_NHS_NUMBER}'",
                "params": (VALID_NHS_NUMBER, 42),
                "duration": 0.25,
            },
        )
    finally:
        sql_logger.removeHandler(handler)
        sql_logger.propagate = True
        sql_logger.setLevel(logging.NOTSET)

    output = stream.getvalue()
    assert output.startswith(f"query ran | SELECT 1 WHERE nhs = '{REDACTED}' | ")
    assert REDACTED in output.rsplit("|", 1)[1]
    assert valid_nhs_numbers_in(output) == []
