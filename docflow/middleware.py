"""Request bodies the application will not read, and error answers under /api/.

Bodies: one over the intake ceiling is refused with 413 before it is read. One sent
with ``Transfer-Encoding`` and no ``Content-Length`` (chunked) is refused with 411:
Django reads ``CONTENT_LENGTH`` bytes of a WSGI body and treats a missing length as
an empty body, so under the dev server and gunicorn alike a chunked request would
otherwise arrive with every field missing. Both answers go unsized, so that Django's
own server closes the connection and never takes the unread body for the next
request (gunicorn discards an unread body by itself).

Errors: under /api/ every error answer is RFC 9457 problem+json, whoever wrote it
(Django's 404 and 500 pages, its technical pages in DEBUG, CSRF refusals, a plain
view's 405); only the status and the Allow, WWW-Authenticate and Retry-After
headers are kept, never the page's text.
"""

from __future__ import annotations

from django.conf import settings

from docflow.api.problems import (
    KEPT_HEADERS,
    PROBLEM_CONTENT_TYPE,
    is_api_path,
    problem_http_response,
    server_error_problem,
)


class ApiProblemMiddleware:
    """Rewrite any error answer under /api/ that is not problem+json into one."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api_path(request.path_info)
            and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            headers = {k: response[k] for k in KEPT_HEADERS if response.has_header(k)}
            if response.status_code == 500:
                return server_error_problem(headers=headers)
            return problem_http_response(
                status_code=response.status_code, headers=headers
            )
        return response


class RequestSizeLimitMiddleware:
    """Answer 413 problem+json when Content-Length is over the intake ceiling, and
    411 when a body comes without a Content-Length."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        refusal = self.refusal(request.META)
        if refusal is not None:
            status_code, title, detail, kind = refusal
            # Unsized: answered before the body is read (see the module docstring).
            return problem_http_response(
                status_code=status_code,
                title=title,
                detail=detail,
                kind=kind,
                sized=False,
            )
        return self.get_response(request)

    @staticmethod
    def refusal(meta) -> tuple[int, str, str, str] | None:
        """(status, title, detail, problem type) of a body not to read, or None."""
        declared = meta.get("CONTENT_LENGTH") or None
        if declared is None:
            if meta.get("HTTP_TRANSFER_ENCODING"):
                return (
                    411,
                    "Length required",
                    "Send the body with a Content-Length header; chunked transfer "
                    "encoding is not accepted.",
                    "length-required",
                )
            return None
        if not (declared.isascii() and declared.isdigit()):
            return (
                400,
                "Bad request",
                "The Content-Length header is not a number of bytes.",
                "malformed-request",
            )
        if int(declared) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return (
                413,
                "Request too large",
                "The request body exceeds the ceiling of "
                f"{settings.DOCFLOW_MAX_UPLOAD_BYTES} bytes of document content.",
                "too-large",
            )
        return None
