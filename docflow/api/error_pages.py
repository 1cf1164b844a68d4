"""Django's error handlers: problem+json under /api/, the usual pages elsewhere
(a refused staff page gets docflow's NHS.UK-styled 403 page).

Django calls these for errors no view answered (a URL that matches no route outside
the API's own catch-all, an exception that escaped a view, a refused request) when
DEBUG is off; with DEBUG on, docflow.middleware.ApiProblemMiddleware rewrites the
technical pages under /api/ the same way.
"""

from __future__ import annotations

from django.shortcuts import render
from django.views import defaults

from docflow.api.problems import (
    is_api_path,
    problem_http_response,
    server_error_problem,
)


def bad_request(request, exception):
    if is_api_path(request.path_info):
        return problem_http_response(status_code=400, kind="malformed-request")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    """403: problem+json under /api/; elsewhere the NHS.UK page saying what to do
    (never the refusal's own message, which is for the log)."""
    if is_api_path(request.path_info):
        return problem_http_response(status_code=403)
    return render(request, "403.html", status=403)


def page_not_found(request, exception):
    if is_api_path(request.path_info):
        return problem_http_response(status_code=404, title="Not found")
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Nothing of the exception is told: it is logged (redacted) by Django."""
    if is_api_path(request.path_info):
        return server_error_problem()
    return defaults.server_error(request)
