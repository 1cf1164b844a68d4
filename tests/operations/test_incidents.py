"""Incidents: open or join, one alert per opening and resolution, reminders only at
the escalation interval, acknowledged incidents stay quiet."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django_fsm import TransitionNotAllowed
from django_q.models import OrmQ

from audit.models import AuditEvent
from operations.models import (
    Incident,
    IncidentKind,
    IncidentNotification,
    IncidentSeverity,
    IncidentState,
    NotificationEvent,
    NotificationStatus,
)
from operations.services.incidents import (
    NOTIFY_TASK,
    Found,
    IncidentTransitionRefused,
    incident_acknowledge,
    incident_raise,
    incident_resolve,
    incidents_raise_many,
    incidents_resolve_cleared,
)
from tests.factories import UserFactory
from tests.operations.conftest import T0, deliver_all

pytestmark = pytest.mark.django_db


def raise_stuck(scope="sending:docman10", **kw):
    return incident_raise(
        kind=IncidentKind.STUCK_DOCUMENTS,
        scope=scope,
        summary="3 documents stuck",
        severity=IncidentSeverity.MAJOR,
        details={"count": 3},
        **kw,
    )


def events(incident):
    return list(incident.notifications.values_list("event", flat=True))


def test_raise_opens_one_incident_with_one_opened_alert_and_an_audit_event():
    raised = raise_stuck()

    assert raised.created
    incident = raised.incident
    assert incident.state == IncidentState.OPEN
    assert events(incident) == [NotificationEvent.OPENED]
    event = AuditEvent.objects.get(action="incident.opened")
    assert event.target_id == str(incident.public_id)
    assert event.data["scope"] == "sending:docman10"


def test_raising_the_same_problem_again_joins_without_another_alert():
    first = raise_stuck().incident
    with time_machine.travel(timezone_now() + timedelta(minutes=59)):
        second = raise_stuck()

    assert not second.created
    assert second.incident.pk == first.pk
    assert Incident.objects.count() == 1
    assert second.incident.occurrences == 2
    assert events(first) == [NotificationEvent.OPENED]


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def test_a_reminder_goes_once_per_escalation_interval(settings):
    settings.DOCFLOW_OPS_REMINDER_SECONDS = 3600
    with time_machine.travel(T0, tick=False) as traveller:
        incident = raise_stuck().incident
        traveller.move_to(T0 + timedelta(seconds=3599))
        raise_stuck()
        assert events(incident) == [NotificationEvent.OPENED]
        traveller.move_to(T0 + timedelta(seconds=3600))
        raise_stuck()
        raise_stuck()
        assert events(incident) == [
            NotificationEvent.OPENED,
            NotificationEvent.REMINDER,
        ]
        traveller.move_to(T0 + timedelta(seconds=7200))
        raise_stuck()

    assert events(incident) == [
        NotificationEvent.OPENED,
        NotificationEvent.REMINDER,
        NotificationEvent.REMINDER,
    ]


def test_an_acknowledged_incident_is_not_reminded_about():
    operator = UserFactory(username="ops")
    with time_machine.travel(T0, tick=False) as traveller:
        incident = raise_stuck().incident
        incident_acknowledge(incident=incident, actor=operator)
        traveller.move_to(T0 + timedelta(days=1))
        raise_stuck()

    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.owner == operator
    assert incident.acknowledged_at == T0
    assert events(incident) == [NotificationEvent.OPENED]
    assert AuditEvent.objects.filter(action="incident.acknowledged").count() == 1


def test_resolve_alerts_once_and_a_second_resolve_is_a_no_op():
    incident = raise_stuck().incident
    incident_resolve(incident=incident, resolution="cleared")
    again = incident_resolve(incident=incident, resolution="cleared again")

    assert again.state == IncidentState.RESOLVED
    assert again.resolution == "cleared"
    assert events(incident) == [NotificationEvent.OPENED, NotificationEvent.RESOLVED]
    assert AuditEvent.objects.filter(action="incident.resolved").count() == 1


def test_a_problem_seen_again_after_resolution_opens_a_new_incident():
    first = raise_stuck().incident
    incident_resolve(incident=first, resolution="cleared")
    second = raise_stuck()

    assert second.created and second.incident.pk != first.pk
    assert Incident.objects.filter(state=IncidentState.OPEN).count() == 1


def test_a_resolved_incident_cannot_be_acknowledged():
    incident = incident_resolve(incident=raise_stuck().incident, resolution="x")
    with pytest.raises(IncidentTransitionRefused):
        incident_acknowledge(incident=incident, actor=None)


def test_the_state_field_is_protected():
    incident = raise_stuck().incident
    with pytest.raises(AttributeError):
        incident.state = IncidentState.RESOLVED
    with pytest.raises(TransitionNotAllowed):
        incident_resolve(incident=incident, resolution="x").acknowledge()


def test_resolve_cleared_closes_only_scopes_no_longer_seen():
    kept = raise_stuck(scope="sending:docman10").incident
    gone = raise_stuck(scope="received:docman7").incident

    resolved = incidents_resolve_cleared(
        kind=IncidentKind.STUCK_DOCUMENTS,
        active_scopes={"sending:docman10"},
        resolution="cleared",
    )

    assert [i.pk for i in resolved] == [gone.pk]
    kept.refresh_from_db()
    assert kept.state == IncidentState.OPEN


def test_alerts_are_queued_by_task_name_after_commit(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        incident = raise_stuck().incident

    notification = incident.notifications.get()
    (queued,) = OrmQ.objects.all()
    assert queued.task["func"] == NOTIFY_TASK
    assert queued.task["args"] == (notification.pk,)


def test_delivery_sends_email_and_webhook_once_without_patient_data(settings, webhook):
    settings.DOCFLOW_OPS_ALERT_EMAILS = ["oncall@example.nhs.uk"]
    settings.DOCFLOW_OPS_WEBHOOK_URL = webhook.url
    incident = raise_stuck().incident

    deliver_all()
    deliver_all()  # the queue may deliver twice

    notification = IncidentNotification.objects.get()
    assert notification.email_status == NotificationStatus.SENT
    assert notification.webhook_status == NotificationStatus.SENT
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["oncall@example.nhs.uk"]
    assert "Incident opened" in mail.outbox[0].subject
    assert len(webhook.bodies) == 1
    body = webhook.bodies[0]
    assert body["incident"] == str(incident.public_id)
    assert body["event"] == "opened"
    assert set(body) == {
        "event",
        "incident",
        "kind",
        "scope",
        "severity",
        "state",
        "summary",
        "details",
        "opened_at",
        "resolved_at",
    }


def test_a_failing_webhook_is_logged_and_does_not_stop_email(settings, webhook, caplog):
    settings.DOCFLOW_OPS_ALERT_EMAILS = ["oncall@example.nhs.uk"]
    settings.DOCFLOW_OPS_WEBHOOK_URL = webhook.url
    webhook.status = 500
    raise_stuck()

    with caplog.at_level(logging.WARNING, logger="operations"):
        (notification,) = deliver_all()

    assert notification.webhook_status == NotificationStatus.FAILED
    assert notification.email_status == NotificationStatus.SENT
    assert "incident webhook failed" in caplog.text
    assert "HTTPStatusError" in caplog.text


def test_an_unreachable_webhook_fails_fast(settings, unused_port):
    settings.DOCFLOW_OPS_WEBHOOK_URL = f"http://127.0.0.1:{unused_port}/hook"
    raise_stuck()

    (notification,) = deliver_all()

    assert notification.webhook_status == NotificationStatus.FAILED
    assert notification.email_status == NotificationStatus.SKIPPED


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_person_resolving_an_incident_must_say_why():
    incident = raise_stuck().incident

    with pytest.raises(IncidentTransitionRefused):
        incident_resolve(incident=incident, resolution="  ")

    incident.refresh_from_db()
    assert incident.state == IncidentState.OPEN


def refusing(*codes: str) -> dict[str, Found]:
    return {
        code: Found(
            summary=f"{code} is refusing documents",
            severity=IncidentSeverity.MAJOR,
            details={"held": 1},
        )
        for code in codes
    }


def occurrences() -> dict[str, int]:
    return dict(
        Incident.objects.filter(kind=IncidentKind.DESTINATION_REFUSING).values_list(
            "scope", "occurrences"
        )
    )


def test_raise_many_counts_an_occurrence_only_for_incidents_seen_again(settings):
    settings.DOCFLOW_OPS_REMINDER_SECONDS = 3600
    kind = IncidentKind.DESTINATION_REFUSING
    assert incidents_raise_many(kind=kind, found=refusing("A", "B", "C", "D")) == 4

    # Most seen again unchanged (named by the few others), one gone, one new.
    assert incidents_raise_many(kind=kind, found=refusing("A", "B", "C", "E")) == 1
    assert occurrences() == {"A": 2, "B": 2, "C": 2, "D": 1, "E": 1}

    # Few seen again (named themselves).
    assert incidents_raise_many(kind=kind, found=refusing("A")) == 0
    assert occurrences() == {"A": 3, "B": 2, "C": 2, "D": 1, "E": 1}


def test_raise_many_leaves_other_kinds_and_resolved_incidents_alone(settings):
    settings.DOCFLOW_OPS_REMINDER_SECONDS = 3600
    kind = IncidentKind.DESTINATION_REFUSING
    incidents_raise_many(kind=kind, found=refusing("A", "B", "C"))
    other = raise_stuck(scope="A").incident
    resolved = Incident.objects.get(kind=kind, scope="C")
    incident_resolve(incident=resolved, resolution="rerouted")

    incidents_raise_many(kind=kind, found=refusing("A", "B"))

    assert occurrences() == {"A": 2, "B": 2, "C": 1}
    other.refresh_from_db()
    assert other.occurrences == 1


@pytest.mark.postgres
def test_the_incident_table_leaves_room_on_its_pages_for_the_watchs_updates():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'operations_incident'"
        )
        (options,) = cursor.fetchone()

    assert "fillfactor=50" in options
