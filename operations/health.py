"""/healthz checks: the database, the broker, Connect reachability, the circuit and
the oldest queued work. A failed check makes the whole answer 503."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from operations.selectors import oldest_ready_age_seconds, outbound_halts_open_counts

OK, FAIL, WARN = "ok", "fail", "warn"
_connect_cache: dict[str, tuple[float, dict]] = {}
CONNECT_CACHE_SECONDS = 30


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": OK}


def check_broker() -> dict:
    from django_q.brokers import get_broker

    broker = get_broker()
    if not broker.ping():
        return {"status": FAIL}
    return {"status": OK, "queued": broker.queue_size()}


def check_connect() -> dict:
    """Can a TCP connection to Connect be opened (cached briefly, so a probe every
    few seconds does not become traffic of its own)."""
    base_url = settings.DOCFLOW_CONNECT_BASE_URL
    cached = _connect_cache.get(base_url)
    if cached and time.monotonic() - cached[0] < CONNECT_CACHE_SECONDS:
        return cached[1]
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=2):
            result = {"status": OK}
    except OSError as exc:
        result = {"status": FAIL, "error": type(exc).__name__}
    _connect_cache[base_url] = (time.monotonic(), result)
    return result


def check_circuit() -> dict:
    """Open halts are reported (a warning: sending waits safely, nothing is lost)."""
    halts = outbound_halts_open_counts()
    return {"status": WARN if halts else OK, "open_halts": halts}


def check_queue() -> dict:
    age = oldest_ready_age_seconds()
    limit = settings.DOCFLOW_HEALTH_MAX_QUEUE_AGE_SECONDS
    return {
        "status": FAIL if age > limit else OK,
        "oldest_ready_seconds": round(age, 1),
        "limit_seconds": limit,
    }


CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "connect": check_connect,
    "circuit": check_circuit,
    "queue": check_queue,
}


def health_report() -> tuple[bool, dict]:
    """Run every check; any exception is a failure named by its class only."""
    checks = {}
    for name, check in CHECKS.items():
        try:
            checks[name] = check()
        except Exception as exc:  # a check that cannot run has failed
            checks[name] = {"status": FAIL, "error": type(exc).__name__}
    healthy = all(c["status"] != FAIL for c in checks.values())
    return healthy, {"status": OK if healthy else FAIL, "checks": checks}
