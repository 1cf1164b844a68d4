"""Admin actions on incidents and pauses go through the services."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from operations.models import IncidentKind, IncidentSeverity, IncidentState
from operations.services.incidents import incident_raise
from tests.factories import UserFactory
from transmissions.engine.controls import destination_pause_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False
    user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client.force_login(user)
    client.user = user
    return client


def _stuck():
    return incident_raise(
        kind=IncidentKind.STUCK_DOCUMENTS,
        scope="ready:docman10",
        summary="stuck",
        severity=IncidentSeverity.MAJOR,
    ).incident


def test_an_incident_is_acknowledged_then_resolved_from_its_own_page(admin_client):
    incident = _stuck()
    url = f"/admin/operations/incident/{incident.pk}/change/"

    page = admin_client.get(url).content.decode()
    acknowledged = admin_client.post(
        url,
        {"incident_action": "acknowledge", "acknowledge-note": "Looking at it"},
        follow=True,
    )
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.owner == admin_client.user
    assert "Incident acknowledged" in acknowledged.content.decode()
    resolved = admin_client.post(
        url,
        {"incident_action": "resolve", "resolve-resolution": "Practice back up"},
        follow=True,
    )

    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolution == "Practice back up"
    assert "Incident resolved" in resolved.content.decode()
    assert 'id="incident-acknowledge"' in page and 'id="incident-resolve"' in page
    assert 'name="_save"' not in page
    assert [
        (e.action, e.data.get("note"), e.data.get("resolution"))
        for e in AuditEvent.objects.filter(target_type="incident").order_by("sequence")
    ] == [
        ("incident.opened", None, None),
        ("incident.acknowledged", "Looking at it", None),
        ("incident.resolved", None, "Practice back up"),
    ]
    # Resolved: nothing left to do, and still no Save.
    after = admin_client.get(url).content.decode()
    assert 'id="incident-resolve"' not in after and 'name="_save"' not in after


def test_resolving_without_a_reason_is_refused_with_the_page_shown_again(
    admin_client,
):
    incident = _stuck()
    url = f"/admin/operations/incident/{incident.pk}/change/"

    response = admin_client.post(
        url, {"incident_action": "resolve", "resolve-resolution": "   "}
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "Say why the incident is resolved." in body
    assert 'aria-invalid="true"' in body
    incident.refresh_from_db()
    assert incident.state == IncidentState.OPEN


def test_the_incident_page_never_saves_its_fields(admin_client):
    incident = _stuck()
    url = f"/admin/operations/incident/{incident.pk}/change/"

    response = admin_client.post(url, {"summary": "edited", "_save": "Save"})

    assert response.status_code == 405
    incident.refresh_from_db()
    assert incident.summary == "stuck"
    assert "changed successfully" not in response.content.decode()


def test_the_incident_list_offers_no_bulk_actions_that_skip_the_reason(admin_client):
    _stuck()

    page = admin_client.get("/admin/operations/incident/").content.decode()

    assert 'name="action"' not in page


def test_someone_who_may_only_view_incidents_gets_no_forms_and_cannot_post(
    client, settings
):
    from django.contrib.auth.models import Permission

    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_incident"))
    client.force_login(viewer)
    incident = _stuck()
    url = f"/admin/operations/incident/{incident.pk}/change/"

    page = client.get(url).content.decode()
    refused = client.post(
        url, {"incident_action": "resolve", "resolve-resolution": "x"}
    )

    assert 'id="incident-resolve"' not in page
    assert refused.status_code == 403
    incident.refresh_from_db()
    assert incident.state == IncidentState.OPEN


def test_lifting_a_pause_is_audited(admin_client):
    pause = destination_pause_open(destination_ods_code="A81012", reason="no acks")

    admin_client.post(
        "/admin/operations/destinationpause/",
        {"action": "lift", "_selected_action": [pause.pk]},
    )

    pause.refresh_from_db()
    assert pause.closed_at is not None and pause.closed_by == "admin"
    assert AuditEvent.objects.filter(action="destination.resumed").count() == 1
