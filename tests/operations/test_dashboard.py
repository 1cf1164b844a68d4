"""The hourly roll-up the dashboard reads, and the dashboard page itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission

from docflow.models import DocumentStatus
from docflow.services import document_transition
from operations.models import HourlyCount, HourlyStateCount
from operations.services.rollup import (
    hourly_counts_roll_up,
    hourly_counts_roll_up_recent,
)
from tests.factories import UserFactory
from tests.operations.conftest import T0, document_at
from tests.samples import VALID_NHS_NUMBER

pytestmark = pytest.mark.django_db


def counts(**filters) -> dict:
    return {
        (row.status, row.destination_ods_code, row.document_type, row.reason): row.count
        for row in HourlyCount.objects.filter(**filters)
    }


def test_the_roll_up_counts_documents_reaching_each_state_in_the_hour(practices):
    first = document_at("received", at=T0 + timedelta(minutes=5))
    document_at("ready", at=T0 + timedelta(minutes=50))
    with time_machine.travel(T0 + timedelta(minutes=55), tick=False):
        document_transition(document=first, transition="mark_rejected", reason="REJ01")
    document_at("ready", at=T0 + timedelta(hours=1, minutes=1))  # the next hour

    total = hourly_counts_roll_up(hour=T0 + timedelta(minutes=30))

    kind = "discharge_summary"
    assert counts(hour=T0) == {
        ("submitted", "A81001", kind, ""): 2,
        ("ready", "A81001", kind, ""): 2,
        ("sending", "A81001", kind, ""): 1,
        ("received", "A81001", kind, ""): 1,
        ("rejected", "A81001", kind, "REJ01"): 1,
    }
    assert total == 7
    assert dict(HourlyStateCount.objects.values_list("status", "count")) == {
        "submitted": 2,
        "ready": 2,
        "sending": 1,
        "received": 1,
        "rejected": 1,
    }


def test_rolling_up_again_replaces_the_hour_instead_of_adding(practices):
    document_at("ready", at=T0)
    hourly_counts_roll_up(hour=T0)
    hourly_counts_roll_up(hour=T0)

    assert counts(hour=T0)[("ready", "A81001", "discharge_summary", "")] == 1


def test_the_scheduled_roll_up_covers_the_current_and_previous_hour(practices):
    document_at("ready", at=T0 + timedelta(minutes=59))
    document_at("ready", at=T0 + timedelta(hours=1, minutes=1))

    with time_machine.travel(T0 + timedelta(hours=1, minutes=2), tick=False):
        hourly_counts_roll_up_recent()

    assert sorted(set(HourlyCount.objects.values_list("hour", flat=True))) == [
        T0,
        T0 + timedelta(hours=1),
    ]


def operator():
    user = UserFactory(username="operator")
    user.user_permissions.add(Permission.objects.get(codename="view_incident"))
    return user


def test_the_dashboard_needs_the_operations_permission(client):
    client.force_login(UserFactory(username="clerk"))

    assert client.get("/ops/").status_code == 403


def test_the_dashboard_shows_counts_rejections_and_stuck_work_without_patient_data(
    client, practices
):
    document = document_at("received", at=T0)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        document_transition(
            document=document, transition="mark_rejected", reason="REJ01"
        )
    document_at("sending", at=T0)
    hourly_counts_roll_up(hour=T0)
    client.force_login(operator())

    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        response = client.get("/ops/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Throughput per hour" in page
    assert 'id="ops-charts"' in page
    assert response.context["stuck"] == [
        {
            "state": DocumentStatus.SENDING,
            "endpoint_type": "docman10",
            "threshold_seconds": 300,
            "count": 1,
        }
    ]
    assert response.context["rejections"]["reason"] == {"REJ01": 1}
    hourly = response.context["charts"]["hourly"]
    rejected = next(d for d in hourly["datasets"] if d["label"] == "Rejected")
    assert sum(rejected["data"]) == 1
    assert VALID_NHS_NUMBER not in page
    assert "Testpatient" not in page


def test_each_chart_has_its_numbers_as_a_table_or_list_beside_it(client, practices):
    document = document_at("received", at=T0)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        document_transition(
            document=document, transition="mark_rejected", reason="REJ01"
        )
    hourly_counts_roll_up(hour=T0)
    client.force_login(operator())

    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        response = client.get("/ops/")

    page = response.content.decode()
    hourly = response.context["tables"]["hourly"]
    assert hourly["columns"] == [
        "Hour (UTC)",
        "Submitted",
        "Received by Connect",
        "Accepted",
        "Rejected",
    ]
    assert len(hourly["rows"]) == 24
    _, cells = next(row for row in hourly["rows"] if row[0] == T0.strftime("%H:00"))
    assert dict(cells)["Rejected"] == 1
    assert len(response.context["tables"]["daily"]["rows"]) == 14
    for chart, alternative in (
        ("hourly", 'id="table-hourly"'),
        ("daily", 'id="table-daily"'),
        ("states", 'id="documents-by-state"'),
    ):
        assert f'aria-describedby="chart-{chart}-note"' in page
        assert f'aria-labelledby="chart-{chart}-heading"' in page
        assert alternative in page
    assert page.count('<details class="nhsuk-details">') == 2
    assert 'aria-hidden="true">Rejected </span>1<' in page
