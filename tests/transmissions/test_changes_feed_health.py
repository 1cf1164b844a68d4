"""A changes feed docflow cannot read never fails unseen: tracking records since
when every read has failed, the operations watch raises one incident per sending
organisation once that lasts past DOCFLOW_OPS_FEED_FAILING_SECONDS, and both clear
when the feed reads again. Real simulator over HTTP, its feed spoiled on purpose."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import time_machine
from django.utils import timezone

from docflow.models import DocumentStatus
from operations.models import Incident, IncidentKind, IncidentState
from operations.services.feeds import changes_feeds_watch
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
)
from transmissions.channels.connect.simulator.malformed import FEED_CASES
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import ChangesCursor
from transmissions.pipeline.sending import SendOutcome, document_send

DESTINATION = "A81001"


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch, multiplier=1e9)
    directory_from_scenario()
    settings.DOCFLOW_OPS_FEED_FAILING_SECONDS = 300
    return simulator


def spoil_feed(simulator, case: str) -> None:
    response = httpx.put(f"{simulator.url}/_sim/changes", json={"malformed": case})
    assert response.status_code == 200, response.text


def feed_incidents() -> list[Incident]:
    return list(Incident.objects.filter(kind=IncidentKind.CHANGES_FEED_FAILING))


@pytest.mark.parametrize("case", sorted(FEED_CASES))
def test_a_feed_that_cannot_be_read_raises_one_incident_and_clears_when_it_reads(
    connected, sending_organisation, case
):
    document = ready_document(sending_organisation, DESTINATION)
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    spoil_feed(connected, case)
    started = timezone.now()

    assert changes_feed_read(sending_organisation_id=sending_organisation.pk) == 0

    cursor = ChangesCursor.objects.get(sending_organisation=sending_organisation)
    assert cursor.cursor == ""
    assert cursor.failing_since is not None
    assert cursor.last_failure
    first_failure = cursor.failing_since
    # Not yet too long: no incident.
    with time_machine.travel(started + dt.timedelta(seconds=299)):
        assert changes_feed_read(sending_organisation_id=sending_organisation.pk) == 0
        assert changes_feeds_watch() == set()
    assert feed_incidents() == []
    cursor.refresh_from_db()
    assert cursor.failing_since == first_failure  # since the first failure

    with time_machine.travel(started + dt.timedelta(seconds=301)):
        assert changes_feeds_watch() == {sending_organisation.ods_code}
        changes_feeds_watch()
    [incident] = feed_incidents()
    assert incident.scope == sending_organisation.ods_code
    assert incident.state == IncidentState.OPEN
    assert incident.occurrences == 2
    assert incident.details["last_failure"] == cursor.last_failure

    spoil_feed(connected, "")
    assert changes_feed_read(sending_organisation_id=sending_organisation.pk) > 0

    document.refresh_from_db()
    cursor.refresh_from_db()
    assert document.status == DocumentStatus.ACCEPTED
    assert (cursor.failing_since, cursor.last_failure) == (None, "")
    assert changes_feeds_watch() == set()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED


def test_the_simulator_refuses_a_feed_case_it_does_not_have(connected):
    response = httpx.put(f"{connected.url}/_sim/changes", json={"malformed": "no_guid"})
    assert response.status_code == 400


def test_the_minute_watch_looks_at_the_feeds(connected, sending_organisation):
    from operations import tasks

    spoil_feed(connected, "truncated")
    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=6)):
        report = tasks.watch()

    assert report.endswith(" failing_feeds=1")
    assert [i.scope for i in feed_incidents()] == [sending_organisation.ods_code]
