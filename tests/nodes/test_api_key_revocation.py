"""API-key revocation across nodes: two real web servers (gunicorn, each its own
process with its own verified-key cache, trusting a verified key for five minutes)
share the database with a third process that revokes a key through the service;
both servers refuse the key within DOCFLOW_API_KEY_STAMP_SECONDS (plus a request),
and keep accepting another key. SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.factories import make_api_key
from tests.nodes.conftest import ROOT, free_port, node_environment, wait_until

pytestmark = pytest.mark.integration

DOCUMENTS = "/api/v1/documents"
STAMP_SECONDS = 1
# Generous for a loaded machine: the stamp's period, a request, and process noise.
BOUND_SECONDS = STAMP_SECONDS + 4


def serving(port: int) -> bool:
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    return False


def status(port: int, raw_key: str) -> int:
    return httpx.get(
        f"http://127.0.0.1:{port}{DOCUMENTS}",
        headers={"Authorization": f"Api-Key {raw_key}", "Host": "localhost"},
        timeout=60,  # a first request on a loaded machine loads a great deal
    ).status_code


@pytest.fixture
def two_keys(reference_data, sending_organisation):
    """Two keys of one organisation, made before the database is shared (on SQLite
    the children get a copy of it as it is then)."""
    return (
        make_api_key(sending_organisation=sending_organisation),
        make_api_key(sending_organisation=sending_organisation, name="PAS"),
    )


def test_a_key_revoked_in_one_process_is_refused_by_every_server_within_seconds(
    two_keys, shared_database, start_node, tmp_path
):
    (revoked_key, revoked_raw), (_, kept_raw) = two_keys
    database = shared_database
    extra = {
        # Without the stamp, a verified key would be trusted for five minutes.
        "DOCFLOW_API_KEY_CACHE_SECONDS": "300",
        "DOCFLOW_API_KEY_STAMP_SECONDS": str(STAMP_SECONDS),
    }
    ports = {}
    servers = []
    for name in ("web-a", "web-b"):
        ports[name] = free_port()
        servers.append(
            start_node(
                name,
                [
                    "-m",
                    "gunicorn",
                    "docflow.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{ports[name]}",
                    "--workers",
                    "1",
                ],
                node_environment(database, tmp_path / name, **extra),
            )
        )
    for port in ports.values():
        wait_until(
            lambda p=port: serving(p), timeout=90, what="a server", nodes=servers
        )
        # Verified now, and cached in each server's process.
        assert status(port, revoked_raw) == 200
        assert status(port, kept_raw) == 200

    revoke = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, sys; django.setup();"
            "from docflow.api_keys import api_key_revoke;"
            "api_key_revoke(prefix=sys.argv[1])",
            revoked_key.prefix,
        ],
        cwd=ROOT,
        env=node_environment(database, tmp_path / "revoker", **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert revoke.returncode == 0, revoke.stderr[-3000:]
    revoked_at = time.monotonic()

    refused_after = {}
    for name, port in ports.items():
        wait_until(
            lambda p=port: status(p, revoked_raw) == 401,
            timeout=60,
            what=f"{name} refusing the revoked key",
            nodes=servers,
            every=0.2,
        )
        refused_after[name] = time.monotonic() - revoked_at
    print(f"revoked key refused after: {refused_after}")
    assert max(refused_after.values()) < BOUND_SECONDS
    for port in ports.values():
        assert status(port, kept_raw) == 200
    [[revoked]] = database.rows(
        "SELECT revoked FROM docflow_apikey WHERE prefix = %s", [revoked_key.prefix]
    )
    assert revoked
