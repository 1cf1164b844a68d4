"""RFC 9457 problem details for every API error."""

from __future__ import annotations

import json
from http import HTTPStatus

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from docflow.api.parsers import JsonBodyRefused

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://docflow.nhs.invalid/problems/"
API_PATH_PREFIX = "/api/"
# Headers an error answer keeps when it is rewritten as a problem.
KEPT_HEADERS = ("WWW-Authenticate", "Retry-After", "Allow")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIX)


def problem_body(
    *,
    status_code: int,
    title: str = "",
    detail: str = "",
    kind: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
) -> dict:
    """An RFC 9457 body; the title defaults to the status's own phrase."""
    body: dict = {
        "type": kind if kind == "about:blank" else PROBLEM_BASE + kind,
        "title": title or HTTPStatus(status_code).phrase,
        "status": status_code,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    return body


def problem_http_response(
    *,
    status_code: int,
    headers: dict[str, str] | None = None,
    sized: bool = True,
    **fields,
) -> HttpResponse:
    """A problem as a plain Django response, for code outside DRF views.

    Sized, so no server chunks it (middleware outside CommonMiddleware answers with
    these too), unless ``sized`` is off: an answer given before the request body was
    read goes unsized, because then Django's own server closes the connection
    rather than take the unread body for the next request (WSGI lets no application
    send ``Connection: close`` itself).
    """
    response = HttpResponse(
        json.dumps(problem_body(status_code=status_code, **fields)),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    if sized:
        response["Content-Length"] = str(len(response.content))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def server_error_problem(*, headers: dict[str, str] | None = None) -> HttpResponse:
    """A 500 that tells nothing of the exception (Django logs it, redacted)."""
    return problem_http_response(
        status_code=500,
        title="Internal server error",
        detail="The request could not be completed; it has been logged.",
        headers=headers,
    )


def problem_response(
    *,
    status_code: int,
    title: str,
    detail: str = "",
    kind: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_body(
        status_code=status_code, title=title, detail=detail, kind=kind, errors=errors
    )
    response = Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into a flat list of {field, code, detail}."""
    items: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            items.extend(flatten_errors(value, name))
    elif isinstance(detail, list):
        for value in detail:
            items.extend(flatten_errors(value, prefix))
    else:
        items.append(
            {
                "field": prefix or "non_field_errors",
                "code": getattr(detail, "code", "invalid") or "invalid",
                "detail": str(detail),
            }
        )
    return items


def problem_exception_handler(exc, context):
    """Render DRF and Django errors as problem+json, never leaking internals."""
    if isinstance(exc, RequestDataTooBig):
        return problem_response(
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            title="Request too large",
            detail="The request body exceeds the size ceiling.",
            kind="too-large",
        )
    if isinstance(exc, SuspiciousOperation):
        # Too many fields or files, a malformed multipart body: the client's fault.
        return problem_response(
            status_code=400, title="Bad request", kind="malformed-request"
        )
    if isinstance(exc, exceptions.ParseError):
        # Our own JSON refusals say why without quoting; other parsers' may quote.
        return problem_response(
            status_code=400,
            title="Malformed request body",
            detail=(
                str(exc.detail)
                if isinstance(exc, JsonBodyRefused)
                else "The request body could not be parsed."
            ),
            kind="malformed-request",
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return problem_response(
            status_code=415,
            title="Unsupported media type",
            detail="Send application/json or multipart/form-data.",
            kind="unsupported-media-type",
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return problem_response(
            status_code=400,
            title="Validation failed",
            detail="One or more fields are invalid.",
            kind="validation",
            errors=flatten_errors(exc.detail),
        )
    if isinstance(exc, Http404 | exceptions.NotFound):
        return problem_response(status_code=404, title="Not found")
    detail = exc.detail if isinstance(exc, exceptions.APIException) else ""
    headers = {k: v for k, v in response.items() if k in KEPT_HEADERS}
    return problem_response(
        status_code=response.status_code,
        title=response.status_text,
        detail=str(detail),
        headers=headers,
    )
