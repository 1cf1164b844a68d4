"""FHIR's JSON media type: parsed as strictly as the REST API's JSON, answered sized."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework import renderers

from docflow.api.parsers import BoundedJSONParser

FHIR_JSON = "application/fhir+json"


class FhirJsonParser(BoundedJSONParser):
    """``application/fhir+json`` bodies, with the REST API's bounds and refusals."""

    media_type = FHIR_JSON


class FhirJsonRenderer(renderers.JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir+json"


def fhir_json_response(
    body: dict, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """A FHIR resource as ``application/fhir+json``, never cached."""
    response = HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status=status_code,
        content_type=f"{FHIR_JSON}; charset=utf-8",
    )
    response["Content-Length"] = str(len(response.content))
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response
