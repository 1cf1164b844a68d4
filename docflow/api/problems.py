"""RFC 9457 problem details for every API error."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://docflow.nhs.invalid/problems/"


def problem_response(
    *,
    status_code: int,
    title: str,
    detail: str = "",
    kind: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict = {
        "type": kind if kind == "about:blank" else PROBLEM_BASE + kind,
        "title": title,
        "status": status_code,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
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
    headers = {
        k: v
        for k, v in response.items()
        if k in ("WWW-Authenticate", "Retry-After", "Allow")
    }
    return problem_response(
        status_code=response.status_code,
        title=response.status_text,
        detail=str(detail),
        headers=headers,
    )
