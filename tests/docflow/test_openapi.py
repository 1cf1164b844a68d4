"""The published OpenAPI schema is valid, and the live API keeps its promises."""

from __future__ import annotations

import json

import httpx
import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command

from docflow.api.examples import (
    EXAMPLE_IDEMPOTENCY_KEY,
    EXAMPLE_ODS_CODE,
    INTAKE_JSON_EXAMPLE,
)
from docflow.demo.organisations import DESTINATIONS
from docflow.models import Document
from tests.factories import SendingOrganisationFactory, make_api_key, submit_document
from tests.schemathesis_run import run_schemathesis

# Bounded and deterministic: the same requests on every run, well under a minute,
# so a failure here is a regression rather than a lucky draw.
MAX_EXAMPLES = 30
SEED = 20240115
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def test_schema_generates_without_errors_or_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "openapi: 3" in text
    assert "/api/v1/documents/{public_id}/content" in text


@pytest.fixture
def live_api_key(reference_data):
    """A key allowed to read content, and documents it can see (for the live server)."""
    organisation = SendingOrganisationFactory(ods_code="RX1")
    api_key, raw = make_api_key(sending_organisation=organisation)
    api_key.user.user_permissions.add(
        Permission.objects.get(codename="view_document_content")
    )
    documents = [
        submit_document(sending_organisation=organisation, actor=api_key)
        for _ in range(3)
    ]
    return raw, [str(document.public_id) for document in documents]


def _schemathesis_config(document_ids: list[str]) -> str:
    """Half of the generated ids are real documents, so 200 answers are checked too."""
    return "\n".join(
        [
            "[dictionaries.documents]",
            f"values = {json.dumps(document_ids)}",
            "[parameters]",
            '"path.public_id" = { dictionary = "documents", probability = 0.5 }',
            "",
        ]
    )


def test_live_api_conforms_to_its_schema(live_server, live_api_key, tmp_path, settings):
    """schemathesis against the served schema: no 5xx, every answer as documented,
    and the success path too: the schema's examples are valid submissions, so the
    run stores documents through the API (201) and replays them (200). Rate limits
    are off, so the run reaches every answer rather than 429s (which are documented
    and tested in tests/security/test_rate_limits.py)."""
    settings.DOCFLOW_API_RATE_PER_KEY = ""
    settings.DOCFLOW_API_RATE_PER_SOURCE = ""
    raw_key, document_ids = live_api_key
    returncode, report = run_schemathesis(
        schema=f"{live_server.url}/api/v1/schema/",
        header=f"Authorization: Api-Key {raw_key}",
        workdir=tmp_path,
        config_toml=_schemathesis_config(document_ids),
        checks=CHECKS,
        max_examples=MAX_EXAMPLES,
    )
    assert returncode == 0, report
    assert "Tested: 4" in report, report
    assert " failed" not in report, report
    submitted = Document.objects.filter(source_system__startswith="api:")
    assert submitted.exists(), report
    assert submitted.filter(idempotency_key=EXAMPLE_IDEMPOTENCY_KEY).exists()


def test_schema_examples_are_a_valid_submission(api_client):
    """The documented example is accepted as it stands (what schemathesis sends)."""
    response = api_client.post(
        "/api/v1/documents",
        INTAKE_JSON_EXAMPLE,
        format="json",
        HTTP_IDEMPOTENCY_KEY=EXAMPLE_IDEMPOTENCY_KEY,
    )

    assert response.status_code == 201, response.content
    assert response.json()["destination_ods_code"] == EXAMPLE_ODS_CODE
    assert EXAMPLE_ODS_CODE in {code for code, *_ in DESTINATIONS}


def test_served_schema_carries_the_intake_examples(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    create = schema["paths"]["/api/v1/documents"]["post"]

    [example] = create["requestBody"]["content"]["application/json"][
        "examples"
    ].values()
    assert example["value"] == INTAKE_JSON_EXAMPLE
    [key] = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert [e["value"] for e in key["examples"].values()] == [EXAMPLE_IDEMPOTENCY_KEY]


def test_swagger_ui_is_served(live_server):
    response = httpx.get(f"{live_server.url}/api/v1/docs/")
    assert response.status_code == 200
    assert "swagger-ui" in response.text


@pytest.mark.django_db
def test_malformed_document_id_is_a_problem_json_404(api_client):
    response = api_client.get("/api/v1/documents/not-a-uuid")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.django_db
def test_api_path_without_trailing_slash_still_redirects(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/docs/"


@pytest.mark.django_db
def test_document_list_is_a_documented_cursor_page(api_client, api_key):
    for _ in range(3):
        submit_document(sending_organisation=api_key[0].sending_organisation)
    first = api_client.get("/api/v1/documents", {"page_size": 2}).json()
    assert set(first) == {"next", "previous", "results"}
    assert len(first["results"]) == 2
    second = api_client.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert api_client.get("/api/v1/documents", {"page_size": 0}).status_code == 400


@pytest.mark.django_db
def test_content_download_honours_an_accept_header_for_its_media_type(
    api_client, api_key
):
    api_key[0].user.user_permissions.add(
        Permission.objects.get(codename="view_document_content")
    )
    document = submit_document(sending_organisation=api_key[0].sending_organisation)
    response = api_client.post(
        f"/api/v1/documents/{document.public_id}/content",
        {"reason": "checking the letter"},
        HTTP_ACCEPT="application/pdf",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
