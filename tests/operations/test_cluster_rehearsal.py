"""The cluster rehearsal (scripts/cluster-rehearsal): the whole run with 100
documents on PostgreSQL and Redis (issue 19, acceptance 1), and the readers it
relies on to tell what happened."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from docflow import models as docflow_models
from operations.rehearsals.cluster import nodes, outcome

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REHEARSAL_REDIS_URL", "redis://127.0.0.1:6379/4")


def test_the_rehearsal_knows_the_states_the_models_define():
    assert {str(s) for s in docflow_models.FINAL_STATES} == outcome.FINAL_STATES
    assert {str(s) for s in docflow_models.ATTENTION_STATES} == outcome.ATTENTION_STATES


def test_nginx_error_log_tells_in_flight_from_refused(tmp_path):
    log = tmp_path / "error.log"
    log.write_text(
        "2026/12/02 12:41:25 [error] 1#1: *11 upstream prematurely closed "
        "connection while reading response header from upstream, client: 127.0.0.1, "
        'request: "POST /api/v1/documents HTTP/1.1", upstream: '
        '"http://127.0.0.1:24101/api/v1/documents", host: "127.0.0.1:24100"\n'
        "2026/12/02 12:41:25 [warn] 1#1: *11 upstream server temporarily disabled "
        "while reading response header from upstream, upstream: "
        '"http://127.0.0.1:24101/api/v1/documents"\n'
        "2026/12/02 12:41:26 [error] 1#1: *12 connect() failed (111: Connection "
        "refused) while connecting to upstream, upstream: "
        '"http://127.0.0.1:24101/api/v1/documents"\n'
    )
    assert outcome.nginx_upstream_errors(log) == {
        ("127.0.0.1:24101", "in flight"): 1,
        ("127.0.0.1:24101", "refused"): 1,
    }


def test_a_worker_task_is_in_hand_from_processing_until_processed(tmp_path):
    node = nodes.Node("worker-1", "worker", [], {}, tmp_path)
    node.log_path.write_text(
        "first line\n"
        "... INFO django-q Process-1 processing alpha-beta "
        "'transmissions.tasks.prepare_document'\n"
        "... INFO django-q Process-2 processing gamma-delta "
        "'transmissions.tasks.track'\n"
        "... INFO django-q Processed 'transmissions.tasks.prepare_document' "
        "(alpha-beta)\n"
    )
    assert nodes.worker_task_in_hand(node) == "transmissions.tasks.track"
    with node.log_path.open("a") as log:
        log.write(
            "... INFO django-q Processed 'transmissions.tasks.track' (gamma-delta)\n"
        )
    assert nodes.worker_task_in_hand(node) == ""
    assert outcome.tasks_processed(node.log_path) == {
        "transmissions.tasks.prepare_document": 1,
        "transmissions.tasks.track": 1,
    }


def _redis_answers() -> bool:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@pytest.mark.postgres
@pytest.mark.integration
def test_cluster_rehearsal_with_100_documents_loses_and_duplicates_nothing():
    """nginx+TLS, two web nodes, two worker nodes on Redis, the simulator and the
    MLLP listener; one web node and one worker node SIGKILLed mid-run."""
    if not _redis_answers():
        pytest.skip(f"needs Redis at {REDIS_URL}")
    if shutil.which("nginx") is None and not os.access("/usr/sbin/nginx", os.X_OK):
        pytest.skip("needs nginx (Debian's, /usr/sbin/nginx)")
    default = settings.DATABASES["default"]
    database_url = (
        f"postgres://{default['USER']}@{default['HOST'] or '127.0.0.1'}:"
        f"{default['PORT'] or 5432}/h4_rehearsal_suite"
    )
    done = subprocess.run(
        [
            str(ROOT / "scripts" / "cluster-rehearsal"),
            "--documents",
            "100",
            "--json",
            "--database-url",
            database_url,
            "--redis-url",
            REDIS_URL,
            "--base-port",
            "24500",
            "--timeout",
            "300",
        ],
        cwd=ROOT,
        env={**os.environ, "DOCFLOW_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.stdout, done.stderr[-4000:]
    report = json.loads(done.stdout)
    documents = report["documents"]
    assert documents["stored"] == 100
    assert documents["lost"] == 0
    assert documents["stored_twice"] == 0
    assert set(documents["by_state"]) <= outcome.FINAL_STATES | outcome.ATTENTION_STATES
    assert documents["attention_without_one_work_item"] == 0
    # Nothing twice at the simulator: every key once, no document posted twice.
    sent = report["simulator"]["documents_per_idempotency_key"]
    assert set(sent) == {"1"}
    assert report["simulator"]["documents_posted_twice"] == 0
    # Both kills happened mid-run, to the nodes named.
    assert set(report["kills"]) == {"web-1", "worker-1"}
    assert report["nodes"]["web-1"]["killed"] and report["nodes"]["worker-1"]["killed"]
    # The only client errors were in flight on the killed web node, and each of
    # those requests succeeded when retried with the same Idempotency-Key.
    clients = report["clients"]
    assert clients["not_from_the_killed_node"] == 0
    assert set(clients["by_answer"]) <= {"502"}
    assert clients["retried_then_succeeded"] == clients["requests_retried"]
    assert report["nginx"]["in_flight_on_dying_node"]["web-2"] == 0
    assert report["mllp"]["acknowledged"] == documents["mllp"]
    assert report["ok"], report["failures"]
    assert done.returncode == 0
