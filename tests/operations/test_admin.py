"""Admin actions on incidents and pauses go through the services."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from operations.models import IncidentKind, IncidentSeverity, IncidentState
from operations.services.health import destination_pause_open
from operations.services.incidents import incident_raise
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False
    user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client.force_login(user)
    client.user = user
    return client


def test_acknowledge_and_resolve_actions_use_the_services(admin_client):
    incident = incident_raise(
        kind=IncidentKind.STUCK_DOCUMENTS,
        scope="ready:docman10",
        summary="stuck",
        severity=IncidentSeverity.MAJOR,
    ).incident
    url = "/admin/operations/incident/"

    admin_client.post(url, {"action": "acknowledge", "_selected_action": [incident.pk]})
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.owner == admin_client.user

    admin_client.post(url, {"action": "resolve", "_selected_action": [incident.pk]})
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolution == "Resolved by admin"
    assert admin_client.get(f"{url}{incident.pk}/change/").status_code == 200


def test_lifting_a_pause_is_audited(admin_client):
    pause = destination_pause_open(destination_ods_code="A81012", reason="no acks")

    admin_client.post(
        "/admin/operations/destinationpause/",
        {"action": "lift", "_selected_action": [pause.pk]},
    )

    pause.refresh_from_db()
    assert pause.lifted_at is not None and pause.lifted_by == "admin"
    assert AuditEvent.objects.filter(action="destination.resumed").count() == 1
