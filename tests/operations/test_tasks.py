"""The scheduled entry points and their schedules."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django_q.models import Schedule

from operations import tasks
from operations.models import HourlyStateCount, Incident, IncidentNotification
from tests.operations.conftest import T0, document_at

pytestmark = pytest.mark.django_db


def test_setup_schedules_declares_the_watch_and_the_roll_up():
    call_command("setup_schedules", stdout=StringIO())

    schedules = {s.func: s.minutes for s in Schedule.objects.all()}
    assert schedules["operations.tasks.watch"] == 1
    assert schedules["operations.tasks.roll_up_hourly_counts"] == 5


def test_the_watch_task_raises_once_and_reports_what_it_found(practices):
    document_at("sending", at=T0)

    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        first = tasks.watch()
        tasks.watch()

    assert first.startswith("stuck=1 ")
    assert Incident.objects.count() == 1
    assert IncidentNotification.objects.count() == 1


def test_the_roll_up_task_counts_the_recent_hours(practices):
    document_at("ready", at=T0 + timedelta(minutes=10))

    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        assert tasks.roll_up_hourly_counts() == 2  # submitted and ready

    assert HourlyStateCount.objects.filter(hour=T0).count() == 2


def test_delivering_a_notification_twice_sends_it_once(practices):
    document_at("sending", at=T0)
    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        tasks.watch()
    notification = IncidentNotification.objects.get()

    assert tasks.notification_deliver(notification.pk) == "sent"
    assert tasks.notification_deliver(notification.pk) == "already delivered"


def test_the_watch_snapshots_documents_by_state_and_stuck_counts_for_the_pages(
    practices, client
):
    from django.contrib.auth.models import Permission

    from operations.models import Snapshot
    from tests.factories import UserFactory

    document_at("sending", at=T0)
    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        tasks.watch()
    document_at("ready", at=T0 + timedelta(minutes=7))  # after the snapshot

    snapshot = Snapshot.objects.get(key="documents_by_state")
    assert snapshot.taken_at == T0 + timedelta(minutes=6)
    assert snapshot.data["sending"] == 1 and snapshot.data["ready"] == 0
    user = UserFactory(username="operator")
    user.user_permissions.add(Permission.objects.get(codename="view_incident"))
    client.force_login(user)
    with time_machine.travel(T0 + timedelta(minutes=8), tick=False):
        page = client.get("/ops/")
        scrape = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert dict(page.context["by_state"])["Ready"] == 0  # as counted by the watch
    assert page.context["stuck"] == [
        {
            "state": "sending",
            "endpoint_type": "docman10",
            "threshold_seconds": 300,
            "count": 1,
        }
    ]
    assert 'docflow_documents{state="ready"} 0.0' in scrape
    assert "docflow_documents_counted_at_seconds" in scrape


def test_each_app_declares_its_own_schedules_and_the_command_collects_them():
    from docflow.management.commands.setup_schedules import declared_schedules

    by_app = {
        name: func.split(".")[0] for name, (func, _m) in declared_schedules().items()
    }

    assert set(by_app.values()) == {
        "audit",
        "casework",
        "governance",
        "operations",
        "transmissions",
    }
    for name, func_app in by_app.items():
        module = __import__(f"{func_app}.schedules", fromlist=["SCHEDULES"])
        assert name in module.SCHEDULES  # declared by the app whose task it runs


def test_a_schedule_declared_by_two_apps_is_refused(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from docflow.management.commands.setup_schedules import declared_schedules
    from operations import schedules as operations_schedules
    from transmissions import schedules as transmissions_schedules

    name = next(iter(transmissions_schedules.SCHEDULES))
    monkeypatch.setitem(
        operations_schedules.SCHEDULES, name, ("operations.tasks.watch", 1)
    )
    with pytest.raises(ImproperlyConfigured, match="declared twice"):
        declared_schedules()
