import logging

import pytest
from django.db import connection

from tests.audit.leaks import valid_nhs_numbers_in
from tests.samples import VALID_NHS_NUMBER, intake_json_body

pytestmark = pytest.mark.django_db

SPACED_NHS_NUMBER = (
    f"{VALID_NHS_NUMBER[:3]} {VALID_NHS_NUMBER[3:6]} {VALID_NHS_NUMBER[6:]}"
)


@pytest.fixture
def sql_logged_at_debug(caplog):
    """Capture every record from DEBUG up, each SQL statement and its params too."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    # settings.DEBUG is False under test, so the backend would not log queries.
    was_forced = connection.force_debug_cursor
    connection.force_debug_cursor = True
    yield caplog
    connection.force_debug_cursor = was_forced


def submit_over_the_api(api_client):
    return api_client.post(
        "/api/v1/documents",
        intake_json_body(),
        format="json",
        HTTP_IDEMPOTENCY_KEY="evt-logging-1",
    )


def record_texts(record: logging.LogRecord) -> list[str]:
    """Everything a handler or formatter could print from one record."""
    return [
        record.getMessage(),
        repr(record.args),
        record.exc_text or "",
        record.stack_info or "",
        *(repr(value) for value in vars(record).values()),
    ]


def test_intake_logs_its_sql_at_debug_level_with_the_nhs_number_redacted(
    api_client, sql_logged_at_debug
):
    response = submit_over_the_api(api_client)

    assert response.status_code == 201, response.content
    sql_messages = [
        record.getMessage()
        for record in sql_logged_at_debug.records
        if record.name == "django.db.backends"
    ]
    document_inserts = [
        message
        for message in sql_messages
        if message.lstrip("(.0123456789) ").startswith("INSERT")
        and "docflow_document" in message
    ]
    assert document_inserts, "the document INSERT was not logged"
    assert all("[NHS-NUMBER]" in message for message in document_inserts)


def test_intake_at_debug_level_never_logs_the_nhs_number(
    api_client, sql_logged_at_debug
):
    response = submit_over_the_api(api_client)

    assert response.status_code == 201, response.content
    assert sum(r.name == "django.db.backends" for r in sql_logged_at_debug.records) > 5
    assert VALID_NHS_NUMBER not in sql_logged_at_debug.text
    assert SPACED_NHS_NUMBER not in sql_logged_at_debug.text
    assert valid_nhs_numbers_in(sql_logged_at_debug.text) == []
    for record in sql_logged_at_debug.records:
        for text in record_texts(record):
            assert VALID_NHS_NUMBER not in text, (record.name, text[:200])
