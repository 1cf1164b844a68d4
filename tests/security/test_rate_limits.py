"""Rate limits at the door: 429 with Retry-After per API key and per source, on the
REST API (problem+json) and FHIR (OperationOutcome). The throttle's own clock is
held still, so nothing here depends on how fast the test runs."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from docflow.models import Document
from tests.factories import make_api_key
from tests.fhir.conftest import FHIR_JSON, document_reference
from tests.samples import intake_json_body

pytestmark = pytest.mark.django_db

NOW = 1_800_000_000.0


@pytest.fixture
def clock(monkeypatch):
    """The throttles' timer, moved only by the test."""
    now = {"t": NOW}
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: now["t"])
    return now


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def submit(client: APIClient, key: str):
    return client.post(
        "/api/v1/documents",
        intake_json_body(),
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_one_key_over_its_rate_gets_429_problem_with_retry_after(
    settings, clock, api_key
):
    settings.DOCFLOW_API_RATE_PER_KEY = "2/min"
    settings.DOCFLOW_API_RATE_PER_SOURCE = ""
    client = client_for(api_key[1])

    assert submit(client, "evt-1").status_code == 201
    assert client.get("/api/v1/documents").status_code == 200
    refused = submit(client, "evt-2")

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert refused["Retry-After"] == "60"
    assert refused.json()["status"] == 429
    # Refused before the view ran: nothing stored for the refused request.
    assert list(Document.objects.values_list("idempotency_key", flat=True)) == ["evt-1"]

    clock["t"] += 61
    retried = submit(client, "evt-2")
    assert retried.status_code == 201
    assert Document.objects.filter(idempotency_key="evt-2").count() == 1


def test_another_key_has_its_own_window(settings, clock, sending_organisation):
    settings.DOCFLOW_API_RATE_PER_KEY = "1/min"
    settings.DOCFLOW_API_RATE_PER_SOURCE = ""
    first = client_for(make_api_key(sending_organisation=sending_organisation)[1])
    second = client_for(make_api_key(sending_organisation=sending_organisation)[1])

    assert first.get("/api/v1/documents").status_code == 200
    assert first.get("/api/v1/documents").status_code == 429
    assert second.get("/api/v1/documents").status_code == 200


def test_two_keys_of_one_source_share_the_source_limit(
    settings, clock, sending_organisation
):
    settings.DOCFLOW_API_RATE_PER_KEY = "100/min"
    settings.DOCFLOW_API_RATE_PER_SOURCE = "3/hour"
    first = client_for(make_api_key(sending_organisation=sending_organisation)[1])
    second = client_for(make_api_key(sending_organisation=sending_organisation)[1])
    other_source = client_for(make_api_key()[1])

    assert first.get("/api/v1/documents").status_code == 200
    assert second.get("/api/v1/documents").status_code == 200
    assert first.get("/api/v1/documents").status_code == 200
    refused = second.get("/api/v1/documents")

    assert refused.status_code == 429
    assert refused["Retry-After"] == "3600"
    assert other_source.get("/api/v1/documents").status_code == 200


def test_fhir_over_the_rate_gets_429_operation_outcome_with_retry_after(
    settings, clock, api_client
):
    settings.DOCFLOW_API_RATE_PER_KEY = "1/min"
    settings.DOCFLOW_API_RATE_PER_SOURCE = ""

    def post(value: str):
        body = document_reference()
        body["masterIdentifier"]["value"] = value
        return api_client.post(
            "/fhir/R4/DocumentReference", data=json.dumps(body), content_type=FHIR_JSON
        )

    assert post("evt-1").status_code == 201
    refused = post("evt-2")

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"
    assert not Document.objects.filter(idempotency_key="evt-2").exists()


def test_empty_rate_means_no_limit(settings, clock, api_client):
    settings.DOCFLOW_API_RATE_PER_KEY = ""
    settings.DOCFLOW_API_RATE_PER_SOURCE = ""
    statuses = {api_client.get("/api/v1/documents").status_code for _ in range(5)}
    assert statuses == {200}
