"""Retries, the circuit breaker, token failures, the kill switch and surges."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from casework.models import WorkItem, WorkItemStatus
from docflow.models import DocumentStatus, Organisation
from tests.factories import UserFactory
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.engine.controls import outbound_pause, outbound_resume
from transmissions.models import HaltKind, OutboundHalt, Transmission
from transmissions.pipeline.sending import SendOutcome, document_send

S = DocumentStatus


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    # Trust the directory: these tests are about the POST, not the lookup.
    Organisation.objects.update(last_verified_at=timezone.now())
    return simulator


@pytest.fixture
def connect_down(connected, settings, unused_tcp_port):
    """Connect stops answering: nothing listens on the port any more."""
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_tcp_port}"


def test_unreachable_connect_goes_back_to_ready_with_backoff_and_same_key(
    connected, connect_down, settings, sending_organisation
):
    settings.DOCFLOW_SEND_RETRY_BASE_SECONDS = 30
    document = ready_document(sending_organisation, "A81001")

    result = document_send(document_id=document.pk)

    document.refresh_from_db()
    transmission = Transmission.objects.get(document=document)
    assert result.outcome == SendOutcome.RETRY
    assert document.status == S.READY
    assert transmission.attempts == 1
    wait = (transmission.next_attempt_at - timezone.now()).total_seconds()
    assert 0 <= wait <= 30  # full jitter: anywhere up to the base
    # Not due yet: nothing is claimed.
    assert document_send(document_id=document.pk).outcome == SendOutcome.NOT_DUE


def test_retry_reuses_the_transmission_and_posts_once_when_connect_returns(
    connected, connect_down, settings, sending_organisation, simulator
):
    document = ready_document(sending_organisation, "A81001")
    document_send(document_id=document.pk)
    key = Transmission.objects.get(document=document).idempotency_key

    settings.DOCFLOW_CONNECT_BASE_URL = simulator.url
    with time_machine.travel(timezone.now() + dt.timedelta(hours=1)):
        result = document_send(document_id=document.pk)

    [transmission] = Transmission.objects.filter(document=document)
    assert result.outcome == SendOutcome.POSTED
    assert (transmission.idempotency_key, transmission.attempts) == (key, 2)
    assert simulator_stats(simulator)["documents"] == 1


def test_retries_spent_hold_the_document_with_a_send_failed_work_item(
    connected, connect_down, settings, sending_organisation
):
    settings.DOCFLOW_SEND_MAX_ATTEMPTS = 2
    settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = 100
    settings.DOCFLOW_DESTINATION_TTL_SECONDS = 86400
    document = ready_document(sending_organisation, "A81001")
    document_send(document_id=document.pk)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        result = document_send(document_id=document.pk)

    document.refresh_from_db()
    assert result.outcome == SendOutcome.HELD
    assert (document.status, document.status_reason) == (S.HELD, "RETRIES_EXHAUSTED")
    [item] = WorkItem.objects.filter(document=document, status=WorkItemStatus.OPEN)
    assert item.category == "send_failed"


def test_circuit_opens_after_repeated_failures_and_a_trial_send_closes_it(
    connected, connect_down, settings, sending_organisation, simulator
):
    settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = 2
    settings.DOCFLOW_CIRCUIT_COOLDOWN_SECONDS = 60
    first = ready_document(sending_organisation, "A81001")
    second = ready_document(sending_organisation, "A81001")
    third = ready_document(sending_organisation, "A81001")
    document_send(document_id=first.pk)
    document_send(document_id=second.pk)

    halt = OutboundHalt.objects.get(kind=HaltKind.CIRCUIT_OPEN)
    assert halt.sending_organisation == sending_organisation
    assert halt.destination_ods_code == "A81001"
    assert AuditEvent.objects.filter(action="outbound.halted").count() == 1
    # While open nothing is tried.
    assert document_send(document_id=third.pk).detail == HaltKind.CIRCUIT_OPEN

    settings.DOCFLOW_CONNECT_BASE_URL = simulator.url
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=61)):
        result = document_send(document_id=third.pk)

    halt.refresh_from_db()
    assert result.outcome == SendOutcome.POSTED
    assert halt.closed_at is not None
    assert AuditEvent.objects.filter(action="outbound.resumed").count() == 1


def test_refused_credentials_stop_the_organisation_and_lose_nothing(
    connected, monkeypatch, sending_organisation, simulator
):
    monkeypatch.setenv("CONNECT_SECRET_RX1", "not-the-secret")
    document = ready_document(sending_organisation, "A81001")

    result = document_send(document_id=document.pk)

    document.refresh_from_db()
    assert (result.outcome, result.detail) == (
        SendOutcome.HALTED,
        HaltKind.TOKEN_FAILURE,
    )
    assert document.status == S.READY
    halt = OutboundHalt.objects.get(kind=HaltKind.TOKEN_FAILURE)
    assert halt.sending_organisation == sending_organisation
    assert "not-the-secret" not in halt.reason
    # No fallback: the next send does not even try.
    monkeypatch.setenv("CONNECT_SECRET_RX1", "demo-secret-RX1")
    assert document_send(document_id=document.pk).outcome == SendOutcome.HALTED
    assert simulator_stats(simulator)["documents"] == 0

    outbound_resume(
        reason="secret rotated",
        actor=UserFactory(),
        sending_organisation=sending_organisation,
    )
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED


def test_kill_switch_pauses_everyone_until_resumed_and_both_are_audited(
    connected, sending_organisation
):
    operator = UserFactory(username="ops")
    document = ready_document(sending_organisation, "A81001")

    outbound_pause(reason="Connect incident", actor=operator)
    paused = document_send(document_id=document.pk)
    outbound_resume(reason="incident over", actor=operator)
    resumed = document_send(document_id=document.pk)

    assert (paused.outcome, paused.detail) == (
        SendOutcome.HALTED,
        HaltKind.KILL_SWITCH,
    )
    assert resumed.outcome == SendOutcome.POSTED
    events = AuditEvent.objects.filter(action__startswith="outbound.").order_by(
        "sequence"
    )
    assert [(e.action, e.actor_label) for e in events] == [
        ("outbound.halted", "ops"),
        ("outbound.resumed", "ops"),
    ]


def test_outbound_command_pauses_shows_and_resumes(connected, sending_organisation):
    from io import StringIO

    out = StringIO()
    call_command("outbound", "pause", "--reason", "planned change", stdout=out)
    call_command("outbound", "status", stdout=out)
    call_command(
        "outbound", "resume", "--reason", "change done", "--operator", "ann", stdout=out
    )
    call_command("outbound", "status", stdout=out)

    text = out.getvalue()
    assert "Paused: Paused by an operator: all sending organisations" in text
    assert "HALTED" in text and "planned change" in text
    assert text.rstrip().endswith("Outbound is running: no open halts.")
    resumed = AuditEvent.objects.get(action="outbound.resumed")
    assert resumed.actor_id == "cli:ann"


def test_outbound_command_needs_a_reason(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--reason"):
        call_command("outbound", "pause")
    assert not OutboundHalt.objects.exists()


def test_a_surge_of_system_errors_halts_the_organisation_once(
    connected, settings, sending_organisation
):
    settings.DOCFLOW_SURGE_THRESHOLD = 2
    documents = [ready_document(sending_organisation, "A81008") for _ in range(3)]
    for document in documents[:2]:
        document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    [halt] = OutboundHalt.objects.filter(kind=HaltKind.SURGE)
    assert halt.sending_organisation == sending_organisation
    assert document_send(document_id=documents[2].pk).detail == HaltKind.SURGE
    # Each system error still has its own work item; the surge is one halt.
    assert WorkItem.objects.filter(category="system_error", status="open").count() == 2
