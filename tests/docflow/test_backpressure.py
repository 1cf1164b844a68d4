"""Intake backpressure: past the preparation backlog's depth, the API and FHIR answer
503 with Retry-After and store nothing; once the backlog drains, the same
Idempotency-Key is accepted, once."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from docflow import backpressure
from docflow.backpressure import (
    intake_backpressure_check,
    preparation_backlog_at_least,
    preparation_backlog_forget,
)
from docflow.errors import IntakeBusy
from docflow.models import Document, DocumentStatus, PayloadVersion
from tests.factories import submit_document
from tests.fhir.conftest import FHIR_JSON, document_reference
from tests.samples import intake_json_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def backlog(settings, sending_organisation):
    """Two documents waiting for preparation, and a depth of two."""
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 0
    waiting = [
        submit_document(sending_organisation=sending_organisation) for _ in range(2)
    ]
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 2
    settings.DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS = 45
    return waiting


def drain_one(backlog) -> None:
    Document.objects.filter(pk=backlog[0].pk).update(status=DocumentStatus.READY)


def stored_counts() -> tuple[int, int, int]:
    return (
        Document.objects.count(),
        PayloadVersion.objects.count(),
        AuditEvent.objects.filter(action="document.submitted").count(),
    )


def submit(api_client, key: str = "evt-burst"):
    return api_client.post(
        "/api/v1/documents", intake_json_body(), format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def test_the_backlog_count_is_bounded_and_counts_only_submitted(backlog):
    assert preparation_backlog_at_least(2)
    assert not preparation_backlog_at_least(3)
    assert not preparation_backlog_at_least(0)
    drain_one(backlog)
    assert not preparation_backlog_at_least(2)


def test_at_depth_the_api_answers_503_with_retry_after_and_stores_nothing(
    backlog, api_client, settings, tmp_path
):
    before = stored_counts()

    refused = submit(api_client)

    assert refused.status_code == 503
    assert refused["Retry-After"] == "45"
    assert refused["Content-Type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 503
    assert problem["type"].endswith("/intake-busy")
    assert stored_counts() == before
    assert not Document.objects.filter(idempotency_key="evt-burst").exists()


def test_a_retry_with_the_same_key_after_the_backlog_drains_is_stored_once(
    backlog, api_client
):
    assert submit(api_client).status_code == 503
    drain_one(backlog)

    accepted = submit(api_client)
    # The accepted document fills the backlog again; its replay is still answered.
    replay = submit(api_client)

    assert accepted.status_code == 201, accepted.content
    assert replay.status_code == 200
    assert replay.json()["id"] == accepted.json()["id"]
    assert Document.objects.filter(idempotency_key="evt-burst").count() == 1


def test_depth_zero_turns_backpressure_off(backlog, api_client, settings):
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 0
    assert submit(api_client).status_code == 201


def test_fhir_at_depth_answers_503_operation_outcome_with_retry_after(
    backlog, api_client
):
    before = stored_counts()

    refused = api_client.post(
        "/fhir/R4/DocumentReference",
        data=json.dumps(document_reference()),
        content_type=FHIR_JSON,
    )

    assert refused.status_code == 503
    assert refused["Retry-After"] == "45"
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "intake_busy"
    assert stored_counts() == before


def test_a_backlog_far_below_the_depth_is_counted_once_a_second_not_per_document(
    settings, sending_organisation, django_assert_num_queries, monkeypatch
):
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 2 * backpressure.CLEAR_HEADROOM
    preparation_backlog_forget()
    with django_assert_num_queries(1):
        intake_backpressure_check()
    with django_assert_num_queries(0):
        intake_backpressure_check()
        intake_backpressure_check()
    # Once the remembered answer is older than CLEAR_FOR_SECONDS, it counts again.
    now = backpressure.time.monotonic()
    monkeypatch.setattr(
        backpressure.time,
        "monotonic",
        lambda: now + backpressure.CLEAR_FOR_SECONDS + 0.01,
    )
    with django_assert_num_queries(1):
        intake_backpressure_check()


def test_within_the_headroom_every_document_is_counted(
    settings, sending_organisation, django_assert_num_queries
):
    # A depth smaller than the headroom: no clear answer is ever remembered.
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = backpressure.CLEAR_HEADROOM - 1
    preparation_backlog_forget()
    for _ in range(3):
        with django_assert_num_queries(1):
            intake_backpressure_check()


def test_a_remembered_clear_answer_is_for_its_depth_only(backlog, settings):
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 2 * backpressure.CLEAR_HEADROOM
    preparation_backlog_forget()
    intake_backpressure_check()  # clear, remembered for this depth
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 2
    with pytest.raises(IntakeBusy):
        intake_backpressure_check()
