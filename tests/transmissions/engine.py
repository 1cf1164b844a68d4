"""Shared set-up for transmission engine tests: a directory matching the simulator's
scenario, Connect credentials in the environment, and documents made ready through
the real services."""

from __future__ import annotations

import json

import httpx

from docflow.models import Document, DocumentStatus, Organisation, OrganisationStatus
from tests.factories import consume_prepare_task, submit_document
from tests.transmissions.conftest import SCENARIO
from transmissions.channels.connect.client import TOKENS
from transmissions.channels.connect.connections import connect_clients_close
from transmissions.pipeline.sweep import document_prepare_for_sending

SCENARIO_ORGANISATIONS = json.loads(SCENARIO.read_text())["organisations"]


def directory_from_scenario() -> None:
    """Our directory believes every scenario destination is active (a stale belief
    the live checks correct)."""
    for entry in SCENARIO_ORGANISATIONS:
        Organisation.objects.update_or_create(
            ods_code=entry["ods_code"],
            defaults={
                "name": entry["name"],
                "endpoint_type": entry["endpoint_type"],
                "status": OrganisationStatus.ACTIVE,
            },
        )


def connect_to(simulator, settings, monkeypatch, *, multiplier: float = 1e9) -> None:
    settings.DOCFLOW_CONNECT_BASE_URL = simulator.url
    monkeypatch.setenv("CONNECT_SECRET_RX1", "demo-secret-RX1")
    monkeypatch.setenv("CONNECT_SECRET_RY2", "demo-secret-RY2")
    connect_clients_close()
    TOKENS.clear()
    # Lifecycle timers pass at once unless a test wants to watch them.
    httpx.put(f"{simulator.url}/_sim/time", json={"multiplier": multiplier})


def ready_document(sending_organisation, destination: str, **overrides) -> Document:
    document = submit_document(
        sending_organisation=sending_organisation,
        destination_ods_code=destination,
        **overrides,
    )
    prepared = document_prepare_for_sending(document_id=document.pk)
    consume_prepare_task(document)
    assert prepared.document.status == DocumentStatus.READY, prepared.document
    return prepared.document


def simulator_stats(simulator) -> dict:
    return httpx.get(f"{simulator.url}/_sim/stats").json()
