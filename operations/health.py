"""Health probes, cheap enough to be asked every few seconds; JSON, no patient data.

- **live** (``/healthz/live``): the process can serve requests. Nothing outside the
  process is checked: a liveness probe that failed on the database or Connect would
  restart healthy web workers for someone else's outage.
- **ready** (``/healthz/ready``, and ``/healthz``): the database and the task broker
  answer; either failing makes it 503 (take this node out of rotation). Connect
  reachability, open outbound halts (the circuit), the age of the oldest ready
  document and the audit sealer's lag are reported as warnings: sending waits safely
  while they last, and intake must keep working through them.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from audit.sealing import audit_seal_lag, seal_max_lag_seconds
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
    """Can a TCP connection to Connect be opened (a warning when not; cached briefly,
    failures too, so a probe every few seconds does not become traffic of its own or
    wait on an unreachable host every time)."""
    base_url = settings.DOCFLOW_CONNECT_BASE_URL
    cached = _connect_cache.get(base_url)
    if cached and time.monotonic() - cached[0] < CONNECT_CACHE_SECONDS:
        return cached[1]
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = settings.DOCFLOW_HEALTH_CONNECT_TIMEOUT_SECONDS
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            result = {"status": OK}
    except OSError as exc:
        result = {"status": WARN, "error": type(exc).__name__}
    _connect_cache[base_url] = (time.monotonic(), result)
    return result


def check_circuit() -> dict:
    """Open halts are reported (a warning: sending waits safely, nothing is lost)."""
    halts = outbound_halts_open_counts()
    return {"status": WARN if halts else OK, "open_halts": halts}


def check_queue() -> dict:
    """The oldest ready document (an indexed MIN); a warning past the limit."""
    age = oldest_ready_age_seconds()
    limit = settings.DOCFLOW_HEALTH_MAX_QUEUE_AGE_SECONDS
    return {
        "status": WARN if age > limit else OK,
        "oldest_ready_seconds": round(age, 1),
        "limit_seconds": limit,
    }


def check_audit_sealer() -> dict:
    """Audit events waiting for the sealer (a warning past the bound: audited writes
    go on, but they are not tamper-evident until sealed)."""
    lag = audit_seal_lag()
    limit = seal_max_lag_seconds()
    age = lag.oldest_age_seconds
    return {
        "status": WARN if age > limit else OK,
        "unsealed": lag.pending,
        "oldest_unsealed_seconds": round(age, 1),
        "limit_seconds": limit,
    }


# What readiness depends on (a failure: 503), and what it only reports.
READY_CHECKS = {"database": check_database, "broker": check_broker}
WARNING_CHECKS = {
    "connect": check_connect,
    "circuit": check_circuit,
    "queue": check_queue,
    "audit_sealer": check_audit_sealer,
}


def _run(check, *, failure: str) -> dict:
    try:
        return check()
    except Exception as exc:  # a check that cannot run says so, by class name only
        return {"status": failure, "error": type(exc).__name__}


def live_report() -> dict:
    """The process is up and answering; nothing else is asked."""
    return {"status": OK}


def ready_report() -> tuple[bool, dict]:
    """Ready when the database and the broker answer; Connect, the circuit and the
    queue's age are warnings that never make it unready."""
    checks = {name: _run(check, failure=FAIL) for name, check in READY_CHECKS.items()}
    ready = all(result["status"] == OK for result in checks.values())
    for name, check in WARNING_CHECKS.items():
        checks[name] = _run(check, failure=WARN)
    warnings = sorted(name for name, r in checks.items() if r["status"] == WARN)
    if not ready:
        status = FAIL
    elif warnings:
        status = WARN
    else:
        status = OK
    return ready, {"status": status, "checks": checks, "warnings": warnings}
