"""Destination health against the real simulator, and automatic pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from docflow.models import DocumentStatus
from operations.models import DestinationPause, Incident, IncidentKind, IncidentState
from operations.services.health import (
    destination_health_list,
    destinations_watch,
)
from tests.factories import SendingOrganisationFactory
from tests.operations.conftest import send_and_track
from transmissions.engine.controls import (
    destination_pause_close,
    destination_pause_open,
)

pytestmark = pytest.mark.django_db

FOUR_DAYS = timedelta(days=4)


@pytest.fixture
def organisation(db):
    return SendingOrganisationFactory(ods_code="RX1", name="Example Hospitals")


@pytest.mark.hazard("HAZ-016")
def test_health_reports_acceptance_rejection_mix_and_unacknowledged(
    connected, organisation
):
    send_and_track(organisation, ["A81001", "A81001", "A81005", "A81012"])

    health = {
        h.destination_ods_code: h
        for h in destination_health_list(now=timezone.now() + FOUR_DAYS)
    }

    assert health["A81001"].acceptance_rate == 1.0
    assert health["A81001"].median_seconds_to_accept is not None
    assert health["A81005"].acceptance_rate == 0.0
    assert health["A81005"].rejection_mix == {"REJ01": 1}
    assert health["A81012"].unacknowledged == 1
    assert health["A81001"].unacknowledged == 0


@pytest.mark.hazard("HAZ-016")
def test_a_destination_that_keeps_not_acknowledging_is_paused_with_one_incident(
    connected, organisation, settings
):
    settings.DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD = 2
    documents = send_and_track(organisation, ["A81012"] * 2)
    assert {d.status for d in documents} <= {
        DocumentStatus.RECEIVED,
        DocumentStatus.DELIVERED,
    }
    later = timezone.now() + FOUR_DAYS

    assert destinations_watch(now=timezone.now())["unacknowledged"] == set()
    assert destinations_watch(now=later)["unacknowledged"] == {"A81012"}
    destinations_watch(now=later)

    (pause,) = DestinationPause.objects.filter(closed_at__isnull=True)
    assert pause.destination_ods_code == "A81012"
    (incident,) = Incident.objects.filter(kind=IncidentKind.DESTINATION_UNACKNOWLEDGED)
    assert incident.state == IncidentState.OPEN
    assert "paused" in incident.summary
    assert incident.notifications.count() == 1
    assert AuditEvent.objects.filter(action="destination.paused").count() == 1


def test_the_pause_incident_stays_open_until_a_person_lifts_the_pause(
    connected, organisation, settings
):
    settings.DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD = 1
    send_and_track(organisation, ["A81012"])
    destinations_watch(now=timezone.now() + FOUR_DAYS)

    destinations_watch(now=timezone.now())  # not over the threshold any more
    incident = Incident.objects.get(kind=IncidentKind.DESTINATION_UNACKNOWLEDGED)
    assert incident.state == IncidentState.OPEN

    destination_pause_close(
        halt=DestinationPause.objects.get(), reason="practice fixed", actor=None
    )
    destinations_watch(now=timezone.now())
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED


def test_automatic_pausing_can_be_turned_off(connected, organisation, settings):
    settings.DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD = 1
    settings.DOCFLOW_OPS_AUTO_PAUSE_DESTINATIONS = False
    send_and_track(organisation, ["A81012"])

    destinations_watch(now=timezone.now() + FOUR_DAYS)

    assert not DestinationPause.objects.exists()
    incident = Incident.objects.get(kind=IncidentKind.DESTINATION_UNACKNOWLEDGED)
    assert "paused" not in incident.summary


def test_an_inactive_destination_opens_one_refusal_incident(connected, organisation):
    documents = send_and_track(organisation, ["A81006", "A81006"])
    assert [d.status_reason for d in documents] == ["DC02", "DC02"]

    assert destinations_watch()["refusing"] == {"A81006"}
    (incident,) = Incident.objects.filter(kind=IncidentKind.DESTINATION_REFUSING)
    assert incident.details == {"held": 2}
    assert incident.notifications.count() == 1


def test_a_paused_destination_waits_in_ready_until_the_pause_is_lifted(
    connected, organisation
):
    from tests.transmissions.engine import ready_document, simulator_stats
    from transmissions.pipeline.sending import SendOutcome, document_send

    document = ready_document(organisation, "A81001")
    pause = destination_pause_open(
        destination_ods_code="A81001", reason="practice not acknowledging"
    )

    result = document_send(document_id=document.pk)

    document.refresh_from_db()
    assert (result.outcome, result.detail) == (
        SendOutcome.HALTED,
        "destination_paused",
    )
    assert document.status == DocumentStatus.READY
    assert simulator_stats(connected)["documents"] == 0

    destination_pause_close(halt=pause, reason="practice fixed", actor=None)
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    document.refresh_from_db()
    assert document.status == DocumentStatus.RECEIVED
