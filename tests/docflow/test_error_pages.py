"""A refused staff page is docflow's NHS.UK 403 page; the API keeps problem+json;
an expected refusal is logged as one line, without a traceback, while errors keep
theirs."""

from __future__ import annotations

import logging
import sys

import pytest
from django.core.exceptions import PermissionDenied

from docflow.api.error_pages import permission_denied
from docflow.refusal_logging import ExpectedRefusalFilter
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_refused_staff_page_is_the_nhs_403_page_and_logs_no_traceback(client, caplog):
    client.force_login(UserFactory(username="clerk"))
    caplog.set_level(logging.INFO)

    response = client.get("/ops/")

    assert response.status_code == 403
    assert [t.name for t in response.templates][:2] == ["403.html", "base.html"]
    page = response.content.decode()
    assert "<title>You do not have permission to see this page \N{EN DASH} docflow" in (
        page
    )
    assert 'class="nhsuk-header"' in page
    assert '<h1 class="nhsuk-heading-l">' in page
    assert "Go to the work queue" in page
    [refused] = [r for r in caplog.records if r.name == "django.request"]
    assert refused.levelno == logging.WARNING
    assert refused.getMessage() == "Forbidden (Permission denied): /ops/"
    assert refused.exc_info is None
    assert "Traceback" not in caplog.text


def test_a_refusal_under_the_api_stays_problem_json(rf):
    response = permission_denied(rf.get("/api/v1/documents"), PermissionDenied())

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")


def _record(exc: BaseException, status_code: int) -> logging.LogRecord:
    try:
        raise exc
    except type(exc):
        exc_info = sys.exc_info()
    # Made by the logging module's record factory, as Django's are (the redacting
    # one turns the exception into text).
    record = logging.getLogRecordFactory()(
        "django.request", logging.WARNING, __file__, 1, "msg", (), exc_info
    )
    record.status_code = status_code
    return record


def test_errors_keep_their_traceback_and_only_a_403_refusal_loses_it():
    refusal = _record(PermissionDenied("no"), 403)
    error = _record(RuntimeError("boom"), 500)
    odd = _record(PermissionDenied("mapped elsewhere"), 500)
    logger = logging.getLogger("django.request")

    assert any(isinstance(f, ExpectedRefusalFilter) for f in logger.filters)
    for record in (refusal, error, odd):
        assert ExpectedRefusalFilter().filter(record) is True
    assert (refusal.exc_info, refusal.exc_text) == (None, None)
    for kept in (error, odd):
        text = kept.exc_text or logging.Formatter().formatException(kept.exc_info)
        assert text.startswith("Traceback")
    assert "RuntimeError: boom" in (
        error.exc_text or logging.Formatter().formatException(error.exc_info)
    )
