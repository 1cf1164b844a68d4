"""Every error under /api/ is RFC 9457 problem+json: never a 500 page, never HTML."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient
from rest_framework.throttling import BaseThrottle

from docflow.api import views as api_views
from docflow.api.parsers import json_body_parse, json_nesting_exceeds
from docflow.api.views import DocumentCollectionView
from docflow.models import Document
from tests.factories import UserFactory
from tests.samples import intake_json_body

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["status"] == status
    assert body["type"] and body["title"]
    return body


def post_raw(client, body: bytes, *, key: str = "evt-raw", **extra):
    return client.generic(
        "POST",
        "/api/v1/documents",
        body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
        **extra,
    )


def test_lone_surrogate_is_a_400_problem_that_does_not_echo_it(api_client):
    raw = json.dumps(intake_json_body(document_type="\ud800")).encode()
    assert b"\\ud800" in raw

    response = post_raw(api_client, raw)

    body = assert_problem(response, 400)
    assert body["type"].endswith("/malformed-request")
    assert b"ud800" not in response.content.lower()
    assert Document.objects.count() == 0


def test_paired_surrogate_escapes_are_ordinary_text(api_client):
    raw = json.dumps(intake_json_body(notes="\U0001f600 smiling")).encode()

    response = post_raw(api_client, raw)

    assert response.status_code == 201, response.content


def test_unknown_document_type_lists_the_allowed_ones_without_echoing(api_client):
    response = api_client.post(
        "/api/v1/documents",
        intake_json_body(document_type="memo-zq7"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="evt-choice",
    )

    body = assert_problem(response, 400)
    [error] = body["errors"]
    assert error["field"] == "document_type"
    assert error["code"] == "invalid_choice"
    assert "discharge_summary" in error["detail"]
    assert "memo-zq7" not in response.content.decode()


def test_unknown_status_filter_does_not_echo_it(api_client):
    response = api_client.get("/api/v1/documents", {"status": "zq7-state"})

    assert_problem(response, 400)
    assert "zq7-state" not in response.content.decode()


def test_json_nested_3000_deep_is_a_400_problem_not_a_recursion_error(api_client):
    raw = b'{"notes": ' + b"[" * 3000 + b"]" * 3000 + b"}"

    response = post_raw(api_client, raw)

    body = assert_problem(response, 400)
    assert "64 levels" in body["detail"]


def test_json_within_the_depth_limit_reaches_validation(api_client, settings):
    settings.DOCFLOW_JSON_MAX_DEPTH = 64
    # 63 arrays inside the outer object: 64 levels, the most allowed.
    raw = b'{"notes": ' + b"[" * 63 + b"]" * 63 + b"}"

    response = post_raw(api_client, raw)

    body = assert_problem(response, 400)
    assert body["type"].endswith("/validation")


def test_nesting_is_counted_outside_strings_only():
    brackets_in_text = json.dumps({"notes": "[" * 500, "more": "{" * 500})
    assert not json_nesting_exceeds(brackets_in_text, 64)
    escaped_quote = '{"a": "\\"[[[[", "b": ' + "[" * 65 + "]" * 65 + "}"
    assert json_nesting_exceeds(escaped_quote, 64)
    assert json_body_parse(b'{"a": [[1]]}', max_depth=3) == {"a": [[1]]}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"description": "caf\xe9"}', "UTF-8"),
        (b'{"description": ', "valid JSON"),
        (b'{"description": NaN}', "valid JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", "valid JSON"),
    ],
    ids=["latin-1", "truncated", "nan", "huge-integer"],
)
def test_unparseable_bodies_are_400_problems(api_client, raw, why):
    response = post_raw(api_client, raw)

    body = assert_problem(response, 400)
    assert why in body["detail"]
    assert b"caf" not in response.content


def test_malformed_id_with_an_encoded_line_break_is_a_problem_404(api_client):
    response = api_client.get("/api/v1/documents/abc%0A")

    assert_problem(response, 404)


def test_path_outside_every_api_version_is_a_problem_404(api_client):
    assert_problem(api_client.get("/api/v2/documents"), 404)


def test_technical_404_page_of_debug_mode_is_a_problem_under_the_api(
    api_client, settings
):
    settings.DEBUG = True
    assert_problem(api_client.get("/api/v2/documents"), 404)


def test_pages_outside_the_api_keep_their_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_post_to_an_unknown_api_path_is_404_not_a_csrf_page(client):
    client.force_login(UserFactory())
    csrf_checking = client.__class__(enforce_csrf_checks=True)
    csrf_checking.cookies = client.cookies

    assert_problem(csrf_checking.post("/api/v1/nothing-here", {}), 404)


def test_wrong_method_is_a_405_problem_with_allow(api_client):
    response = api_client.delete("/api/v1/documents")

    assert_problem(response, 405)
    assert "POST" in response["Allow"]


def test_unacceptable_accept_header_is_a_406_problem(api_client):
    response = api_client.get("/api/v1/documents", HTTP_ACCEPT="text/html")

    assert_problem(response, 406)


def test_unsupported_media_type_is_a_415_problem_that_does_not_echo_it(api_client):
    response = api_client.generic(
        "POST",
        "/api/v1/documents",
        b"x",
        content_type="text/x-zq7",
        HTTP_IDEMPOTENCY_KEY="evt-415",
    )

    assert_problem(response, 415)
    assert "zq7" not in response.content.decode()


def test_unauthenticated_request_is_a_401_problem_with_a_challenge():
    response = APIClient().get("/api/v1/documents")

    assert_problem(response, 401)
    assert response["WWW-Authenticate"] == "Api-Key"


def test_staff_user_submitting_is_a_403_problem(client):
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_document"))
    api = APIClient()
    api.force_authenticate(user)

    response = api.post(
        "/api/v1/documents", intake_json_body(), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    assert_problem(response, 403)


def test_body_declared_over_the_ceiling_is_a_413_problem(api_client, settings):
    response = api_client.generic(
        "POST",
        "/api/v1/documents",
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH=str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
    )

    assert_problem(response, 413)


def test_content_length_that_is_not_a_number_is_a_400_problem(api_client):
    response = api_client.generic(
        "POST",
        "/api/v1/documents",
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH="-5",
    )

    assert_problem(response, 400)


class _AlwaysThrottled(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 17


def test_throttled_request_is_a_429_problem_with_retry_after(api_client, monkeypatch):
    monkeypatch.setattr(DocumentCollectionView, "throttle_classes", [_AlwaysThrottled])

    response = api_client.get("/api/v1/documents")

    assert_problem(response, 429)
    assert response["Retry-After"] == "17"


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_unexpected_exception_is_a_500_problem_that_tells_nothing(
    api_key, monkeypatch, settings, debug
):
    settings.DEBUG = debug

    def explode(**kwargs):
        raise RuntimeError("internal zq7 detail")

    monkeypatch.setattr(api_views, "document_list", explode)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key[1]}")

    response = client.get("/api/v1/documents")

    body = assert_problem(response, 500)
    assert "zq7" not in response.content.decode()
    assert "RuntimeError" not in response.content.decode()
    assert set(body) == {"type", "title", "status", "detail"}
