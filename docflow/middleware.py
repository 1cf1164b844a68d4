"""Refuse oversized request bodies before reading them."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse


class RequestSizeLimitMiddleware:
    """Answer 413 problem+json when Content-Length is over the intake ceiling."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        declared = request.META.get("CONTENT_LENGTH")
        ceiling = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            too_big = declared is not None and int(declared) > ceiling
        except ValueError:
            too_big = False
        if too_big:
            body = {
                "type": "https://docflow.nhs.invalid/problems/too-large",
                "title": "Request too large",
                "status": 413,
                "detail": (
                    "The request body exceeds the ceiling of "
                    f"{settings.DOCFLOW_MAX_UPLOAD_BYTES} bytes of document content."
                ),
            }
            response = HttpResponse(
                json.dumps(body), status=413, content_type="application/problem+json"
            )
            response["Connection"] = "close"
            return response
        return self.get_response(request)
