"""Health probes and /metrics: liveness that asks nothing outside the process,
readiness (and /healthz) that is 503 only for the database or the broker, with
Connect, the circuit and the queue as warnings; Prometheus text parsed back with
prometheus_client's own parser, and /metrics access rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from docflow.leases import lease_release, lease_take
from operations import health
from operations.models import IncidentKind, IncidentSeverity
from operations.services.incidents import incident_raise
from tests.casework.factories import document_in
from tests.factories import SendingOrganisationFactory
from tests.operations.conftest import T0, document_at
from transmissions.engine.controls import outbound_halt_open
from transmissions.models import HaltKind

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_connect_probe():
    health._connect_cache.clear()
    yield
    health._connect_cache.clear()


def families(response) -> dict:
    text = response.content.decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


READY_CHECKS = {"database", "broker", "connect", "circuit", "queue", "audit_sealer"}


@pytest.mark.parametrize("path", ["/healthz/ready", "/healthz"])
def test_ready_is_200_with_every_check_and_no_warning_when_all_is_well(
    client, connected, path
):
    response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["status"] == "ok"
    assert body["warnings"] == []
    assert set(body["checks"]) == READY_CHECKS
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["connect"] == {"status": "ok"}
    assert body["checks"]["circuit"] == {"status": "ok", "open_halts": {}}


def test_live_is_200_without_asking_the_database_the_broker_or_connect(
    client, settings, unused_port, django_assert_num_queries, broken_broker
):
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_port}"

    with django_assert_num_queries(0):
        response = client.get("/healthz/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert health._connect_cache == {}  # Connect was not even probed


@pytest.mark.parametrize("path", ["/healthz/ready", "/healthz"])
def test_ready_stays_200_with_a_warning_when_connect_is_unreachable(
    client, settings, unused_port, path
):
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_port}"

    response = client.get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "warn"
    assert body["warnings"] == ["connect"]
    assert body["checks"]["connect"] == {
        "status": "warn",
        "error": "ConnectionRefusedError",
    }
    assert body["checks"]["database"] == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz/ready", "/healthz"])
def test_ready_is_503_when_the_broker_does_not_answer(client, broken_broker, path):
    response = client.get(path)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["broker"] == {"status": "fail", "error": "ConnectionError"}
    assert body["checks"]["database"] == {"status": "ok"}


def test_ready_work_waiting_too_long_is_a_warning_not_unreadiness(
    client, connected, practices, settings
):
    settings.DOCFLOW_HEALTH_MAX_QUEUE_AGE_SECONDS = 600
    document_at("ready", at=T0)

    with time_machine.travel(T0 + timedelta(seconds=599), tick=False):
        assert client.get("/healthz/ready").json()["warnings"] == []
    with time_machine.travel(T0 + timedelta(seconds=601), tick=False):
        response = client.get("/healthz/ready")

    assert response.status_code == 200
    assert response.json()["warnings"] == ["queue"]
    assert response.json()["checks"]["queue"]["oldest_ready_seconds"] == 601


def test_an_open_circuit_is_a_warning_not_a_failure(client, connected):
    outbound_halt_open(kind=HaltKind.CIRCUIT_OPEN, reason="failures")

    response = client.get("/healthz/ready")

    assert response.status_code == 200
    assert response.json()["warnings"] == ["circuit"]
    assert response.json()["checks"]["circuit"] == {
        "status": "warn",
        "open_halts": {"circuit_open": 1},
    }


def test_the_connect_probe_is_asked_at_most_once_in_its_cache_interval(
    client, settings, unused_port
):
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_port}"
    client.get("/healthz/ready")
    probed_at = health._connect_cache[settings.DOCFLOW_CONNECT_BASE_URL][0]

    client.get("/healthz/ready")

    assert health._connect_cache[settings.DOCFLOW_CONNECT_BASE_URL][0] == probed_at


@pytest.mark.parametrize("path", ["/healthz", "/healthz/live", "/healthz/ready"])
def test_probes_are_answered_over_plain_http_where_pages_redirect_to_https(
    client, settings, path
):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/ops/").status_code == 301
    assert client.get(path).status_code == 200


def test_metrics_parse_as_prometheus_text_with_domain_gauges(client, practices):
    organisation = SendingOrganisationFactory(ods_code="RX1")
    document_at("ready", at=T0)
    document_in("rejected", sending_organisation=organisation, reason="REJ01")
    incident_raise(
        kind=IncidentKind.STUCK_DOCUMENTS,
        scope="ready:docman10",
        summary="stuck",
        severity=IncidentSeverity.MAJOR,
    )

    with time_machine.travel(T0 + timedelta(seconds=90), tick=False):
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = families(response)
    documents = samples(found["docflow_documents"])
    assert documents[(("state", "ready"),)] == 1
    assert documents[(("state", "rejected"),)] == 1
    assert documents[(("state", "accepted"),)] == 0
    (oldest,) = found["docflow_oldest_ready_document_age_seconds"].samples
    assert oldest.value == 90
    assert samples(found["docflow_incidents_open"]) == {
        (("kind", "stuck_documents"), ("severity", "major")): 1
    }
    assert samples(found["docflow_work_items_open"])[(("category", "rejection"),)] == 1
    assert "python_gc_objects_collected" not in found  # our registry, not the global


def test_metrics_refuse_other_addresses_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 403


def test_metrics_with_a_token_need_it_from_everyone(client, settings):
    settings.DOCFLOW_METRICS_TOKEN = "s3cret-token"

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    wrong = client.get(
        "/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer nope"
    )
    assert wrong.status_code == 403
    right = client.get(
        "/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-token"
    )
    assert right.status_code == 200
    assert "docflow_documents" in families(right)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broken_broker(monkeypatch, unused_port):
    """django-q's broker is a Redis nobody listens for (a real client, refused)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{unused_port}/15")


def test_metrics_say_which_singleton_leases_have_a_live_holder(client):
    lease_take(name="transmissions.tracker", seconds=60)
    token = lease_take(name="operations.watch", seconds=60)
    lease_release(name="operations.watch", token=token)

    found = families(client.get("/metrics", REMOTE_ADDR="127.0.0.1"))

    assert samples(found["docflow_lease_held"]) == {
        (("name", "operations.watch"),): 0,
        (("name", "transmissions.tracker"),): 1,
    }


def test_metrics_count_the_mesh_answers_kept_for_a_person(client):
    from tests.factories import SendingOrganisationFactory as Organisations
    from transmissions.channels.mesh.client import InboxMessage
    from transmissions.channels.mesh.conformance.quarantine import (
        mesh_answer_quarantine,
        mesh_quarantined_answer_close,
    )
    from transmissions.models import MeshMailbox

    mailbox = MeshMailbox.objects.create(
        sending_organisation=Organisations(ods_code="RX1"),
        mailbox_id="X26ABC1",
        password_ref="MESH_PASSWORD_RX1",
        shared_key_ref="MESH_SHARED_KEY",
    )

    def kept(message_id: str, kind: str):
        return mesh_answer_quarantine(
            mailbox=mailbox,
            message=InboxMessage(
                message_id=message_id,
                message_type="DATA",
                workflow_id="GPCONNECT_SEND_DOCUMENT_ACK",
                sender="A81001OT001",
                local_id="ack",
                subject="",
                linked_message_id="",
                status_code="",
                status_event="",
                status_description="",
                status_success=None,
                content=b"{}",
            ),
            kind=kind,
            problem="kept",
        )

    with time_machine.travel(T0, tick=False):
        kept("M-1", "unmatched")
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        kept("M-2", "unreadable")
        dismissed = kept("M-3", "unmatched")
        mesh_quarantined_answer_close(
            quarantined=dismissed, status="dismissed", reason="test", actor=None
        )

    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        found = families(client.get("/metrics", REMOTE_ADDR="127.0.0.1"))

    assert samples(found["docflow_mesh_answers_kept_open"]) == {
        (("kind", "unreadable"),): 1,
        (("kind", "unmatched"),): 1,
        (("kind", "suspicious"),): 0,
    }
    (oldest,) = found["docflow_mesh_answer_kept_oldest_age_seconds"].samples
    assert oldest.value == 3600
