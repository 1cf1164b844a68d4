"""`manage.py rehearse`: every scenario against the real simulator over HTTP,
pipeline run in-process; each reports success and leaves things restored."""

from __future__ import annotations

from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command

from operations.models import (
    DestinationPause,
    Incident,
    IncidentState,
    NotificationEvent,
)
from operations.rehearsals.scenarios import SCENARIOS
from tests.factories import SendingOrganisationFactory
from transmissions.models import OutboundHalt

pytestmark = pytest.mark.django_db


@pytest.fixture
def organisation(db):
    return SendingOrganisationFactory(ods_code="RX1", name="Example Hospitals")


def rehearse(name: str) -> str:
    """The command's report (also when it fails, so the failure shows it)."""
    out = StringIO()
    try:
        call_command("rehearse", name, "--timeout", "20", stdout=out)
    except CommandError as exc:
        return f"{out.getvalue()}\n{exc}"
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_rehearsal_passes_and_restores_normal_behaviour(
    connected, organisation, name
):
    report = rehearse(name)

    assert report.rstrip().endswith("PASSED"), report
    assert "MISSING" not in report
    assert not OutboundHalt.objects.filter(closed_at__isnull=True).exists()
    assert not DestinationPause.objects.filter(closed_at__isnull=True).exists()
    assert not Incident.objects.exclude(state=IncidentState.RESOLVED).exists()
    for incident in Incident.objects.all():
        events = list(incident.notifications.values_list("event", flat=True))
        assert events == [NotificationEvent.OPENED, NotificationEvent.RESOLVED]
    destination = SCENARIOS[name].destination
    behaviour = httpx.put(
        f"{connected.url}/_sim/organisations/{destination}",
        json={"endpoint_type": "docman10", "behaviour": "accept"},
    ).json()["behaviour"]
    assert behaviour == "accept"


def test_credential_rotation_sends_the_waiting_document_once_restored(
    connected, organisation
):
    report = rehearse("credential-rotation")

    assert "1 waiting document(s) sent" in report, report


def test_rehearsals_refuse_anything_but_the_simulator_on_loopback(
    organisation, settings
):
    settings.DOCFLOW_CONNECT_BASE_URL = "https://connect.example.nhs.uk"

    report = rehearse("connect-outage")

    assert "only against the simulator on loopback" in report
    assert not Incident.objects.exists()
