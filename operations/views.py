"""Health probes, /metrics and the staff operations dashboard: parse, read, render."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from docflow.models import DocumentStatus
from operations import selectors
from operations.health import live_report, ready_report
from operations.metrics import metrics_text


@never_cache
@require_GET
def healthz_live(request):
    """Liveness: 200 whenever this process can answer (nothing outside it checked)."""
    return JsonResponse(live_report())


@never_cache
@require_GET
def healthz_ready(request):
    """Readiness (also /healthz): 503 when the database or the broker fails; Connect,
    the circuit and the queue's age are warnings in a 200."""
    ready, report = ready_report()
    return JsonResponse(report, status=200 if ready else 503)


def _metrics_allowed(request) -> bool:
    token = settings.DOCFLOW_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
@require_GET
def metrics(request):
    """Prometheus text format; a bearer token when DOCFLOW_METRICS_TOKEN is set,
    otherwise loopback callers only."""
    if not _metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


def _chart(data: dict, label_format: str) -> dict:
    return {
        "labels": [label.strftime(label_format) for label in data["labels"]],
        "datasets": [
            {"label": DocumentStatus(state).label, "data": values}
            for state, values in data["series"].items()
        ],
    }


def _table(chart: dict, *, first_column: str) -> dict:
    """A chart's data as a table (its text alternative): one row per label, one
    column per series, each cell with its column's name (for the narrow layout)."""
    datasets = chart["datasets"]
    names = [d["label"] for d in datasets]
    return {
        "columns": [first_column, *names],
        "rows": [
            (label, list(zip(names, (d["data"][index] for d in datasets), strict=True)))
            for index, label in enumerate(chart["labels"])
        ],
    }


@login_required
@permission_required("operations.view_incident", raise_exception=True)
@require_GET
def dashboard(request):
    """Throughput, documents by state, rejections, stuck counts, open incidents."""
    now = timezone.now()
    by_state, counted_at = selectors.documents_by_state()
    charts = {
        "hourly": _chart(selectors.throughput_hourly(now=now), "%H:00"),
        "daily": _chart(selectors.throughput_daily(now=now), "%d %b"),
        "states": {
            "labels": [DocumentStatus(s).label for s in by_state],
            "datasets": [{"label": "Documents", "data": list(by_state.values())}],
        },
    }
    tables = {
        "hourly": _table(charts["hourly"], first_column="Hour (UTC)"),
        "daily": _table(charts["daily"], first_column="Day"),
    }
    context = {
        "now": now,
        "tables": tables,
        "counted_at": counted_at,
        "by_state": [(DocumentStatus(s).label, n) for s, n in by_state.items()],
        "oldest_ready_seconds": int(selectors.oldest_ready_age_seconds(now=now)),
        "stuck": [row for row in selectors.stuck_counts(now=now) if row["count"]],
        "rejections": selectors.rejections_breakdown(now=now),
        "incidents": selectors.incidents_open_list(),
        "halts": selectors.outbound_halts_open_counts(),
        "charts": charts,
    }
    return render(request, "operations/dashboard.html", context)
