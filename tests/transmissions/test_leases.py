"""Claims under a lease: a claim its worker stopped renewing is settled by key at
once (found, absent, Connect unreachable); a live worker's claim never is. Time is
frozen and moved, never slept; Connect is the real simulator."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from django_q.models import OrmQ

from audit.models import AuditEvent
from casework.models import WorkItem
from docflow.models import DocumentStatus, Organisation
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from transmissions.channels.connect.batches import _claim_many
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.sending import outbound_document
from transmissions.engine.claims import document_claim
from transmissions.engine.leases import claims_expired, transmission_leases_renew
from transmissions.models import Transmission, TransmissionState
from transmissions.pipeline.clock import clock_round
from transmissions.pipeline.sending import SendOutcome, document_send
from transmissions.pipeline.settling import Settled, sending_claim_settle
from transmissions.queue import SEND, SETTLE, SETTLE_CLAIM

S = DocumentStatus


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    Organisation.objects.update(last_verified_at=timezone.now())
    settings.DOCFLOW_SEND_LEASE_SECONDS = 15
    OrmQ.objects.all().delete()
    return simulator


def queued() -> list[tuple[str, int]]:
    return sorted((q.func(), q.task["args"][0]) for q in OrmQ.objects.all())


def after_the_lease(seconds: float = 16):
    return time_machine.travel(timezone.now() + dt.timedelta(seconds=seconds))


def test_a_claim_carries_a_lease_and_a_batch_claim_too(connected, sending_organisation):
    alone = ready_document(sending_organisation, "A81001")
    batch = [ready_document(sending_organisation, "A81001") for _ in range(2)]
    now = timezone.now()

    document_claim(alone.pk)
    _claim_many([document.pk for document in batch])

    for transmission in Transmission.objects.all():
        left = (transmission.lease_expires_at - now).total_seconds()
        assert 14 <= left <= 16


def test_an_expired_claim_absent_at_connect_is_released_and_sent_under_its_key(
    connected, sending_organisation, django_capture_on_commit_callbacks
):
    document = ready_document(sending_organisation, "A81001")
    document_claim(document.pk)  # ... and the worker died before its POST
    key = Transmission.objects.get(document=document).idempotency_key

    capture = django_capture_on_commit_callbacks
    with after_the_lease():
        with capture(execute=True):
            assert clock_round().claims == 1
        assert queued() == [(SETTLE_CLAIM, document.pk)]
        # Queued once: the next round leaves it to that task.
        assert clock_round().claims == 0
        OrmQ.objects.all().delete()
        with capture(execute=True):
            settled = sending_claim_settle(document_id=document.pk)
        assert queued() == [(SEND, document.pk)]
        document.refresh_from_db()
        assert (settled, document.status) == (Settled.ABSENT, S.READY)
        result = document_send(document_id=document.pk)

    [transmission] = Transmission.objects.filter(document=document)
    assert result.outcome == SendOutcome.POSTED
    assert (transmission.idempotency_key, transmission.attempts) == (key, 1)
    assert simulator_stats(connected)["documents"] == 1
    event = AuditEvent.objects.get(action="document.retry_later")
    assert event.data["idempotency_key"] == key
    assert not WorkItem.objects.filter(document=document).exists()


def test_an_expired_claim_posted_but_unrecorded_is_found_and_recorded(
    connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81001")
    document, transmission, payload = document_claim(document.pk)
    connect_client_for(sending_organisation).post_document(
        idempotency_key=transmission.idempotency_key,
        document=outbound_document(document, payload),
    )  # ... and the worker died before recording Connect's answer

    with after_the_lease():
        settled = sending_claim_settle(document_id=document.pk)

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert settled == Settled.FOUND
    assert document.status in (S.RECEIVED, S.DELIVERED, S.ACCEPTED)
    assert transmission.state != TransmissionState.PENDING
    assert transmission.external_id
    assert simulator_stats(connected)["documents"] == 1


def test_an_expired_claim_with_connect_unreachable_becomes_outcome_unknown(
    connected,
    sending_organisation,
    settings,
    unused_tcp_port,
    django_capture_on_commit_callbacks,
):
    document = ready_document(sending_organisation, "A81001")
    document_claim(document.pk)
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_tcp_port}"

    with after_the_lease(), django_capture_on_commit_callbacks(execute=True):
        settled = sending_claim_settle(document_id=document.pk)

    document.refresh_from_db()
    assert (settled, document.status) == (Settled.UNKNOWN, S.OUTCOME_UNKNOWN)
    assert document.status_reason == "CLAIM_EXPIRED"
    assert list(WorkItem.objects.filter(document=document).values_list("status")) == [
        ("open",)
    ]
    assert (SETTLE, document.pk) in queued()


def test_a_live_worker_renewing_its_lease_is_never_settled_under_it(
    connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81001")
    _, transmission, _ = document_claim(document.pk)
    start = timezone.now()

    for beat in (5, 10, 15, 20, 25):
        with time_machine.travel(start + dt.timedelta(seconds=beat), tick=False):
            assert transmission_leases_renew(transmission_ids=[transmission.pk]) == 1

    with time_machine.travel(start + dt.timedelta(seconds=39), tick=False):
        # Past the first lease by far, inside the last renewal.
        assert claims_expired() == []
        assert clock_round().claims == 0
        assert sending_claim_settle(document_id=document.pk) == Settled.LIVE
    document.refresh_from_db()
    assert document.status == S.SENDING
    # Once it stops renewing, its claim is settled within one lease.
    with time_machine.travel(start + dt.timedelta(seconds=41), tick=False):
        assert claims_expired() == [transmission.pk]
