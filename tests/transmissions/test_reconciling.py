"""Uncertain sends settled by idempotency key, the polling fallback, and directory
reconciliation, against the real simulator."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from casework.models import WorkItem
from docflow.models import Channel, DestinationProfile, DocumentStatus, Organisation
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.directory import organisations_reconcile
from transmissions.channels.connect.sending import outbound_document
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.channels.connect.tracking.polling import transmissions_poll_due
from transmissions.engine.claims import document_claim
from transmissions.models import OutboundHalt, Transmission, TransmissionState
from transmissions.pipeline.sending import SendOutcome, document_send
from transmissions.pipeline.settling import (
    Settled,
    outcome_unknown_settle,
    sending_stuck_mark_unknown,
)
from transmissions.pipeline.tracker import tracking_round

S = DocumentStatus


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    return simulator


def items(document):
    return list(
        WorkItem.objects.filter(document=document).values_list("category", "status")
    )


def test_timeout_after_sending_is_settled_by_key_without_a_second_post(
    connected, settings, sending_organisation
):
    settings.DOCFLOW_CONNECT_TIMEOUTS = (5, 0.3, 5, 5)
    document = ready_document(sending_organisation, "A81011")  # slow:1

    result = document_send(document_id=document.pk)
    document.refresh_from_db()
    assert result.outcome == SendOutcome.OUTCOME_UNKNOWN
    assert document.status == S.OUTCOME_UNKNOWN
    assert items(document) == [("outcome_unknown", "open")]

    settled = outcome_unknown_settle(document_id=document.pk)

    document.refresh_from_db()
    assert settled == Settled.FOUND
    assert document.status in (S.RECEIVED, S.DELIVERED, S.ACCEPTED)
    assert items(document) == [("outcome_unknown", "closed")]
    assert Transmission.objects.get(document=document).state != "pending"
    assert simulator_stats(connected)["documents"] == 1


def test_worker_died_before_posting_is_proved_absent_and_resent_under_the_same_key(
    connected, settings, sending_organisation
):
    document = ready_document(sending_organisation, "A81001")
    document_claim(document.pk)  # the worker claimed, then died before its POST
    key = Transmission.objects.get(document=document).idempotency_key

    later = timezone.now() + dt.timedelta(
        seconds=settings.DOCFLOW_SENDING_TIMEOUT_SECONDS + 1
    )
    with time_machine.travel(later):
        moved = sending_stuck_mark_unknown()
        settled = outcome_unknown_settle(document_id=document.pk)
        document.refresh_from_db()
        assert (moved, settled, document.status) == (
            [document.pk],
            Settled.ABSENT,
            S.READY,
        )
        assert items(document) == [("outcome_unknown", "closed")]
        result = document_send(document_id=document.pk)

    [transmission] = Transmission.objects.filter(document=document)
    assert result.outcome == SendOutcome.POSTED
    assert transmission.idempotency_key == key
    assert simulator_stats(connected)["documents"] == 1


def test_worker_died_after_posting_is_settled_by_the_changes_feed(
    connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81001")
    document, transmission, payload = document_claim(document.pk)
    client = connect_client_for(sending_organisation)
    client.post_document(
        idempotency_key=transmission.idempotency_key,
        document=outbound_document(document, payload),
    )  # ... and the worker died before recording Connect's answer

    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.ACCEPTED
    assert transmission.state == TransmissionState.FINAL
    assert transmission.external_id
    assert AuditEvent.objects.filter(
        action="transmission.posted", data__guid=transmission.external_id
    ).exists()
    assert simulator_stats(connected)["documents"] == 1


def test_changes_feed_is_read_once_per_change(connected, sending_organisation):
    document = ready_document(sending_organisation, "A81001")
    document_send(document_id=document.pk)

    first = changes_feed_read(sending_organisation_id=sending_organisation.pk)
    second = changes_feed_read(sending_organisation_id=sending_organisation.pk)

    assert (first, second) == (3, 0)
    assert (
        AuditEvent.objects.filter(
            target_id=str(document.public_id), action="document.mark_accepted"
        ).count()
        == 1
    )


def test_due_transmissions_are_polled_when_the_feed_missed_them(
    connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81001")
    document_send(document_id=document.pk)

    assert transmissions_poll_due() == 0  # not due yet
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=5)):
        polled = transmissions_poll_due()

    document.refresh_from_db()
    assert polled == 1
    assert document.status == S.ACCEPTED


def test_a_destination_turning_inactive_holds_its_ready_documents(
    connected, sending_organisation, simulator
):
    waiting = ready_document(sending_organisation, "A81001")
    httpx.put(
        f"{simulator.url}/_sim/organisations/A81001", json={"behaviour": "inactive"}
    )

    result = organisations_reconcile()

    waiting.refresh_from_db()
    assert result.held == 1 and result.inactive >= 1
    assert (waiting.status, waiting.status_reason) == (S.HELD, "DC02")
    assert items(waiting) == [("preflight", "open")]
    assert Organisation.objects.get(ods_code="A81001").status == "inactive"
    assert AuditEvent.objects.filter(
        action="organisation.status_changed", target_id="A81001"
    ).exists()


def test_a_practice_reached_over_mesh_is_never_checked_against_connect(
    connected, sending_organisation, simulator
):
    DestinationProfile.objects.create(
        endpoint_type="gp_mesh",
        name="GP practice over MESH",
        channel=Channel.MESH,
        max_file_size_bytes=20 * 1024 * 1024,
        allowed_media_types=["application/pdf"],
    )
    Organisation.objects.filter(ods_code="A81001").update(
        endpoint_type="gp_mesh", last_verified_at=None
    )
    waiting = ready_document(sending_organisation, "A81001")
    # Connect would call it inactive: it is not in Connect's directory at all.
    httpx.put(
        f"{simulator.url}/_sim/organisations/A81001", json={"behaviour": "inactive"}
    )

    result = organisations_reconcile()

    waiting.refresh_from_db()
    assert result.held == 0
    assert waiting.status == S.READY
    assert Organisation.objects.get(ods_code="A81001").status == "active"
    assert not AuditEvent.objects.filter(
        action="organisation.status_changed", target_id="A81001"
    ).exists()


def test_tracking_leaves_mesh_transmissions_to_their_inboxes(
    db, sending_organisation, settings, unused_tcp_port
):
    # Nothing listens there: asking Connect anything would fail and halt the trust.
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_tcp_port}"
    directory_from_scenario()
    document = ready_document(sending_organisation, "A81001")
    Transmission.objects.create(
        document=document,
        payload_version=document.payload_versions.get(),
        sending_organisation=sending_organisation,
        channel=Channel.MESH,
        destination_ods_code="A81001",
        idempotency_key=f"{document.public_id}.1",
        state=TransmissionState.POSTED,
        posted_at=timezone.now(),
        next_poll_at=timezone.now() - dt.timedelta(minutes=5),
    )

    assert tracking_round() == 0
    assert not OutboundHalt.objects.exists()


def test_changes_feed_down_keeps_the_cursor_for_the_next_round(
    connected, settings, sending_organisation, unused_tcp_port
):
    document = ready_document(sending_organisation, "A81001")
    document_send(document_id=document.pk)
    settings.DOCFLOW_CONNECT_BASE_URL = f"http://127.0.0.1:{unused_tcp_port}"

    assert changes_feed_read(sending_organisation_id=sending_organisation.pk) == 0

    settings.DOCFLOW_CONNECT_BASE_URL = connected.url
    assert changes_feed_read(sending_organisation_id=sending_organisation.pk) == 3
    document.refresh_from_db()
    assert document.status == S.ACCEPTED
