"""The watch never overlaps itself (a lease), and joining incidents it already holds
costs one statement for all of them, not two per incident."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from docflow.leases import lease_release, lease_take
from operations.models import Incident, IncidentKind, IncidentSeverity, Snapshot
from operations.services.incidents import Found, incidents_raise_many
from operations.services.watch import WATCH_LEASE, operations_watch_run

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def test_a_watch_run_while_another_holds_the_lease_is_skipped_and_touches_nothing():
    token = lease_take(name=WATCH_LEASE, seconds=300)
    assert token is not None

    report = operations_watch_run()

    assert report.skipped
    assert str(report) == "skipped: another watch run holds the lease"
    assert not Snapshot.objects.exists()

    assert lease_release(name=WATCH_LEASE, token=token)
    report = operations_watch_run()
    assert not report.skipped
    assert Snapshot.objects.filter(key="documents_by_state").exists()
    # Given back after the run: the next run takes it.
    assert not operations_watch_run().skipped


def test_a_lease_is_taken_by_one_taker_until_it_runs_out_or_is_given_back():
    first = lease_take(name="job", seconds=60, now=T)

    assert first is not None
    assert lease_take(name="job", seconds=60, now=T + dt.timedelta(seconds=59)) is None
    second = lease_take(name="job", seconds=60, now=T + dt.timedelta(seconds=61))
    assert second is not None and second != first
    # The first holder's lease ran out and was taken: it can no longer give it back.
    assert not lease_release(name="job", token=first)
    assert lease_release(name="job", token=second)
    assert lease_take(name="job", seconds=60, now=T) is not None


def found(counts: dict[str, int]) -> dict[str, Found]:
    return {
        code: Found(
            summary=f"{code} has not acknowledged {n} document(s) in time",
            severity=IncidentSeverity.MAJOR,
            details={"unacknowledged": n},
        )
        for code, n in counts.items()
    }


def test_incidents_seen_again_unchanged_cost_one_statement_and_changed_ones_a_raise(
    settings,
):
    settings.DOCFLOW_OPS_REMINDER_SECONDS = 3600
    kind = IncidentKind.DESTINATION_UNACKNOWLEDGED
    counts = {f"A8{n:04d}": 10 + n for n in range(20)}

    assert incidents_raise_many(kind=kind, found=found(counts)) == 20
    assert Incident.objects.filter(kind=kind, occurrences=1).count() == 20

    with CaptureQueriesContext(connection) as captured:
        assert incidents_raise_many(kind=kind, found=found(counts)) == 0
    assert len(captured) == 2  # read the incidents, update them all at once
    assert Incident.objects.filter(kind=kind, occurrences=2).count() == 20

    counts["A80003"] = 99
    assert incidents_raise_many(kind=kind, found=found(counts)) == 1
    changed = Incident.objects.get(kind=kind, scope="A80003")
    assert changed.details == {"unacknowledged": 99}
    assert "99 document(s)" in changed.summary
    assert Incident.objects.filter(kind=kind, occurrences=3).count() == 20
