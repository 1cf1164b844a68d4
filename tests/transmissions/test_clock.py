"""The clock: retries queued at their next_attempt_at, full jitter, and the circuit
per destination (opening, cooling down, its trial at retry_at, the endpoint-wide
circuit), against the real simulator; time is frozen and moved, never slept."""

from __future__ import annotations

import datetime as dt
import random

import pytest
import time_machine
from django.utils import timezone
from django_q.models import OrmQ

from audit.models import AuditEvent
from docflow.models import DocumentStatus, Organisation
from operations.models import Incident, IncidentKind
from operations.services.surges import outbound_halts_watch
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
)
from transmissions.engine.controls import connect_failure_record
from transmissions.engine.send_rules import send_retry_ceiling, send_retry_delay
from transmissions.models import HaltKind, OutboundHalt, Transmission
from transmissions.pipeline.clock import clock_round
from transmissions.pipeline.sending import SendOutcome, document_send, documents_send
from transmissions.pipeline.sweep import pipeline_dispatch_due
from transmissions.queue import SEND

S = DocumentStatus
FLAKY = "A81010"
HEALTHY = "A81001"


def sends_queued() -> list[int]:
    return sorted(q.task["args"][0] for q in OrmQ.objects.all() if q.func() == SEND)


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    Organisation.objects.update(last_verified_at=timezone.now())
    OrmQ.objects.all().delete()
    return simulator


@pytest.fixture
def connect_down(connected, settings, unused_tcp_port):
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_tcp_port}"


def round_at(moment, capture):
    with time_machine.travel(moment, tick=False), capture(execute=True):
        return clock_round()


def test_a_retry_is_queued_at_its_next_attempt_at_once_without_any_sweep(
    connect_down, sending_organisation, settings, django_capture_on_commit_callbacks
):
    settings.DOCFLOW_SEND_RETRY_BASE_SECONDS = 20
    document = ready_document(sending_organisation, HEALTHY)
    assert document_send(document_id=document.pk).outcome == SendOutcome.RETRY
    OrmQ.objects.all().delete()
    due = Transmission.objects.get(document=document).next_attempt_at
    capture = django_capture_on_commit_callbacks

    early = round_at(due - dt.timedelta(milliseconds=500), capture)
    assert (early.retries, sends_queued()) == (0, [])

    on_time = round_at(due + dt.timedelta(milliseconds=100), capture)
    assert (on_time.retries, sends_queued()) == (1, [document.pk])

    # Queued once: the next rounds leave it to the task already queued ...
    assert round_at(due + dt.timedelta(seconds=5), capture).retries == 0
    # ... unless nobody took it (its task lost with a killed cluster).
    later = due + dt.timedelta(seconds=settings.DOCFLOW_CLOCK_REQUEUE_SECONDS + 1)
    assert round_at(later, capture).retries == 1


def test_full_jitter_spreads_a_retry_anywhere_up_to_its_ceiling(settings):
    settings.DOCFLOW_SEND_RETRY_BASE_SECONDS = 10
    settings.DOCFLOW_SEND_RETRY_MAX_SECONDS = 60
    random.seed(13)
    delays = [send_retry_delay(attempts=2) for _ in range(2000)]

    assert send_retry_ceiling(attempts=2) == 20
    assert all(0 <= delay <= 20 for delay in delays)
    # Full, not equal, jitter: the lower half of the window is used too.
    assert min(delays) < 1 and max(delays) > 19
    assert sum(delay < 10 for delay in delays) > 800
    # The ceiling doubles per attempt and stops at the maximum.
    assert [send_retry_ceiling(attempts=n) for n in (1, 3, 4, 9)] == [10, 40, 60, 60]


def test_retry_after_is_a_floor_under_the_jitter(settings):
    settings.DOCFLOW_SEND_RETRY_BASE_SECONDS = 10
    random.seed(5)
    delays = [send_retry_delay(attempts=1, retry_after=7.5) for _ in range(500)]

    assert all(7.5 <= delay <= 10 for delay in delays)
    assert min(delays) == 7.5  # whenever the jitter drew less


def test_failures_to_one_destination_open_its_circuit_and_no_one_elses(
    connected, sending_organisation, settings
):
    settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = 3
    waiting = ready_document(sending_organisation, FLAKY)
    healthy = ready_document(sending_organisation, HEALTHY)
    for _ in range(2):
        assert (
            connect_failure_record(
                sending_organisation=sending_organisation,
                destination_ods_code=FLAKY,
                error="503",
            )
            is None
        )

    halt = connect_failure_record(
        sending_organisation=sending_organisation,
        destination_ods_code=FLAKY,
        error="503",
    )

    assert (halt.kind, halt.destination_ods_code) == (HaltKind.CIRCUIT_OPEN, FLAKY)
    event = AuditEvent.objects.get(action="outbound.halted")
    assert (event.target_id, event.data["destination"]) == (f"RX1/{FLAKY}", FLAKY)
    assert document_send(document_id=waiting.pk).detail == HaltKind.CIRCUIT_OPEN
    # The healthy practice is not held up, alone or in a batch.
    assert document_send(document_id=healthy.pk).outcome == SendOutcome.POSTED
    other = ready_document(sending_organisation, HEALTHY)
    [result] = documents_send(document_ids=[other.pk])
    assert result.outcome == SendOutcome.POSTED
    # The operations watch raises one incident naming the destination.
    assert outbound_halts_watch() == {"circuit_open:RX1"}
    incident = Incident.objects.get(kind=IncidentKind.OUTBOUND_HALTED)
    assert incident.summary.startswith(f"Outbound halted for RX1 to {FLAKY}:")
    assert incident.details["destinations"] == [FLAKY]


def test_the_circuit_holds_for_its_cooldown_and_its_trial_goes_at_retry_at(
    connected, sending_organisation, settings, django_capture_on_commit_callbacks
):
    settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = 1
    settings.DOCFLOW_CIRCUIT_COOLDOWN_SECONDS = 20
    first = ready_document(sending_organisation, FLAKY)
    second = ready_document(sending_organisation, FLAKY)
    halt = connect_failure_record(
        sending_organisation=sending_organisation,
        destination_ods_code=FLAKY,
        error="timeout",
    )
    capture = django_capture_on_commit_callbacks

    during = round_at(halt.retry_at - dt.timedelta(seconds=1), capture)
    assert (during.trials, sends_queued()) == (0, [])
    with time_machine.travel(halt.retry_at - dt.timedelta(seconds=1), tick=False):
        # Nor does the sweep queue what the circuit holds.
        assert pipeline_dispatch_due().send == 0
        assert document_send(document_id=first.pk).detail == HaltKind.CIRCUIT_OPEN

    at_retry = round_at(halt.retry_at + dt.timedelta(milliseconds=100), capture)
    assert (at_retry.trials, sends_queued()) == (1, [first.pk])
    assert round_at(halt.retry_at + dt.timedelta(seconds=2), capture).trials == 0

    OrmQ.objects.all().delete()
    with (
        time_machine.travel(halt.retry_at + dt.timedelta(seconds=1), tick=False),
        capture(execute=True),
    ):
        # The trial passes (the practice answers now): the circuit closes and
        # what waited behind it is queued at once.
        assert document_send(document_id=first.pk).outcome == SendOutcome.POSTED
    halt.refresh_from_db()
    assert halt.closed_at is not None
    assert sends_queued() == [second.pk]
    assert AuditEvent.objects.filter(action="outbound.resumed").count() == 1


def test_a_failed_trial_keeps_the_circuit_open_for_another_cooldown(
    connect_down, sending_organisation, settings, django_capture_on_commit_callbacks
):
    settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = 1
    settings.DOCFLOW_CIRCUIT_COOLDOWN_SECONDS = 20
    settings.DOCFLOW_SEND_RETRY_BASE_SECONDS = 5
    document = ready_document(sending_organisation, HEALTHY)
    halt = connect_failure_record(
        sending_organisation=sending_organisation,
        destination_ods_code=HEALTHY,
        error="timeout",
    )
    first_retry = halt.retry_at
    trial_at = first_retry + dt.timedelta(seconds=1)

    with time_machine.travel(trial_at, tick=False):
        assert document_send(document_id=document.pk).outcome == SendOutcome.RETRY

    halt.refresh_from_db()
    assert halt.closed_at is None
    assert halt.retry_at >= trial_at + dt.timedelta(seconds=19)
    OrmQ.objects.all().delete()
    capture = django_capture_on_commit_callbacks
    # The next trial goes at the new retry_at (the document's own backoff is over
    # by then), not before.
    assert round_at(halt.retry_at - dt.timedelta(seconds=1), capture).trials == 0
    assert round_at(halt.retry_at + dt.timedelta(seconds=1), capture).trials == 1


def test_many_destinations_failing_at_once_open_the_endpoint_circuit(
    connected, sending_organisation, settings
):
    settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD = 1
    settings.DOCFLOW_CIRCUIT_ENDPOINT_DESTINATIONS = 3
    elsewhere = ready_document(sending_organisation, "A81002")
    for destination in ("A81001", "A81005"):
        connect_failure_record(
            sending_organisation=sending_organisation,
            destination_ods_code=destination,
            error="connection refused",
        )
    assert not OutboundHalt.objects.filter(destination_ods_code="").exists()
    assert document_send(document_id=elsewhere.pk).outcome == SendOutcome.POSTED

    connect_failure_record(
        sending_organisation=sending_organisation,
        destination_ods_code=FLAKY,
        error="connection refused",
    )

    endpoint = OutboundHalt.objects.get(
        kind=HaltKind.CIRCUIT_OPEN, destination_ods_code="", closed_at__isnull=True
    )
    assert endpoint.sending_organisation == sending_organisation
    # Now every destination waits, those whose own circuit is closed too.
    held = ready_document(sending_organisation, "A81002")
    assert document_send(document_id=held.pk).detail == HaltKind.CIRCUIT_OPEN
    assert outbound_halts_watch() == {"circuit_open:RX1"}
    incident = Incident.objects.get(kind=IncidentKind.OUTBOUND_HALTED)
    assert incident.summary.startswith("Outbound halted for RX1:")


def test_a_ready_document_whose_send_was_lost_is_queued_after_the_grace(
    connected, sending_organisation, django_capture_on_commit_callbacks
):
    document = ready_document(sending_organisation, HEALTHY)
    OrmQ.objects.all().delete()  # its send task died with a cluster
    capture = django_capture_on_commit_callbacks
    ready_at = timezone.now()
    memory: dict = {}

    def lost_at(seconds: float) -> int:
        with (
            time_machine.travel(ready_at + dt.timedelta(seconds=seconds), tick=False),
            capture(execute=True),
        ):
            return clock_round(queued=memory).lost

    assert lost_at(5) == 0  # its own task may still be on its way
    assert lost_at(11) == 1
    assert sends_queued() == [document.pk]
    assert lost_at(12) == 0  # queued once ...
    assert lost_at(45) == 1  # ... and again if that was lost too
