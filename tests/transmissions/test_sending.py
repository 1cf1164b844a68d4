"""Sending and tracking against the real simulator over HTTP, behaviour by behaviour."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from casework.models import WorkItem, WorkItemStatus
from docflow.models import DocumentStatus
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import Transmission, TransmissionState
from transmissions.pipeline.sending import SendOutcome, document_send, documents_send

S = DocumentStatus


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    return simulator


@pytest.fixture(params=["alone", "in a batch"])
def send(request):
    """Each behaviour through both ways in: ``document_send`` for one document, and
    ``documents_send``, which claims, posts and records a batch together."""
    if request.param == "alone":
        return lambda document_id: document_send(document_id=document_id)

    def in_a_batch(document_id):
        [result] = documents_send(document_ids=[document_id])
        return result

    return in_a_batch


def send_and_track(send, document, organisation):
    result = send(document.pk)
    changes_feed_read(sending_organisation_id=organisation.pk)
    document.refresh_from_db()
    return result, document


def open_items(document):
    return list(WorkItem.objects.filter(document=document, status=WorkItemStatus.OPEN))


def test_accept_ends_accepted_with_each_status_change_audited(
    send, connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81001")

    result, document = send_and_track(send, document, sending_organisation)

    assert result.outcome == SendOutcome.POSTED
    assert document.status == S.ACCEPTED
    transmission = Transmission.objects.get(document=document)
    assert transmission.state == TransmissionState.FINAL
    assert transmission.status_code == 4010
    assert transmission.external_id == result.detail
    actions = list(
        AuditEvent.objects.filter(target_id=str(document.public_id))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions[-5:] == [
        "transmission.posted",
        "document.mark_received",
        "document.mark_delivered",
        "document.mark_accepted",
        "transmission.final",
    ]
    final = AuditEvent.objects.get(action="transmission.final")
    assert (final.data["outcome"], final.data["status_code"]) == ("accepted", 4010)
    posted = AuditEvent.objects.get(
        target_id=str(document.public_id), action="transmission.posted"
    )
    assert posted.data["guid"] == transmission.external_id
    assert posted.data["sha256"] == transmission.payload_version.sha256
    assert posted.data["destination"] == "A81001"
    assert open_items(document) == []
    assert simulator_stats(connected)["documents"] == 1


def test_delivered_is_final_where_the_profile_never_reports_accepted(
    send, connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81003")

    _, document = send_and_track(send, document, sending_organisation)

    assert document.status == S.DELIVERED
    transmission = Transmission.objects.get(document=document)
    assert transmission.state == TransmissionState.FINAL
    assert transmission.next_poll_at is None


def test_rejection_opens_one_rejection_work_item_with_the_code(
    send, connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81005")

    _, document = send_and_track(send, document, sending_organisation)

    assert document.status == S.REJECTED
    assert document.status_reason == "REJ01"
    assert Transmission.objects.get(document=document).rejection_code == "REJ01"
    [item] = open_items(document)
    assert item.category == "rejection"
    assert item.reason_code == "REJ01"


@pytest.mark.parametrize(
    ("destination", "code", "reason"),
    [("A81008", 5000, "5000"), ("A81009", 7000, "7000")],
)
def test_system_error_and_on_hold_open_a_system_error_work_item(
    send, connected, sending_organisation, destination, code, reason
):
    document = ready_document(sending_organisation, destination)

    _, document = send_and_track(send, document, sending_organisation)

    assert document.status == S.SYSTEM_ERROR
    assert Transmission.objects.get(document=document).status_code == code
    [item] = open_items(document)
    assert (item.category, item.reason_code) == ("system_error", reason)


@pytest.mark.parametrize(
    ("destination", "code"), [("A81006", "DC02"), ("A81007", "DC03")]
)
def test_live_destination_check_holds_before_posting(
    send, connected, sending_organisation, destination, code
):
    document = ready_document(sending_organisation, destination)

    result = send(document.pk)

    document.refresh_from_db()
    assert result.outcome == SendOutcome.HELD
    assert (document.status, document.status_reason) == (S.HELD, code)
    [item] = open_items(document)
    assert item.category == "preflight"
    assert simulator_stats(connected)["documents"] == 0
    assert not Transmission.objects.filter(document=document).exists()


@pytest.mark.parametrize(
    ("destination", "code"), [("A81006", "DC02"), ("A81007", "DC03")]
)
def test_connect_refusing_the_post_holds_with_its_code(
    send, connected, sending_organisation, destination, code
):
    from django.utils import timezone

    from docflow.models import Organisation

    # Our directory was checked a moment ago and (wrongly) says active.
    Organisation.objects.filter(ods_code=destination).update(
        last_verified_at=timezone.now()
    )
    document = ready_document(sending_organisation, destination)

    result = send(document.pk)

    document.refresh_from_db()
    assert result.outcome == SendOutcome.HELD
    assert (document.status, document.status_reason) == (S.HELD, code)
    transmission = Transmission.objects.get(document=document)
    assert transmission.state == TransmissionState.ABANDONED
    [item] = open_items(document)
    assert item.category == "preflight"


def test_size_limit_at_the_destination_holds_with_sim01(
    send, connected, sending_organisation
):
    from tests.samples import pdf_bytes

    document = ready_document(
        sending_organisation, "A81013", content=pdf_bytes(pad_to=260_000)
    )

    result = send(document.pk)

    document.refresh_from_db()
    assert result.outcome == SendOutcome.HELD
    assert (document.status, document.status_reason) == (S.HELD, "SIM01")


def test_never_acknowledged_stays_delivered_and_keeps_being_polled(
    send, connected, sending_organisation
):
    document = ready_document(sending_organisation, "A81012")

    _, document = send_and_track(send, document, sending_organisation)

    assert document.status == S.DELIVERED
    transmission = Transmission.objects.get(document=document)
    assert transmission.state == TransmissionState.POSTED
    assert transmission.next_poll_at is not None


def test_sending_twice_posts_once(send, connected, sending_organisation):
    document = ready_document(sending_organisation, "A81001")

    first = send(document.pk)
    second = send(document.pk)

    assert (first.outcome, second.outcome) == (SendOutcome.POSTED, "not_ready")
    assert simulator_stats(connected)["documents"] == 1
    assert Transmission.objects.filter(document=document).count() == 1
