"""The watchdog: every threshold per state and profile (just before: nothing; just
after: one incident), joining instead of duplicating, and auto-resolution."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from docflow.models import DocumentStatus
from docflow.services import document_transition
from operations.models import Incident, IncidentKind, IncidentState, NotificationEvent
from operations.services.watchdog import watchdog_run
from tests.operations.conftest import T0, document_at

pytestmark = pytest.mark.django_db

# (state, destination, endpoint type, seconds allowed): the seeded profiles, and the
# site defaults for `submitted` and `ready` (no profile names one). A submitted
# document has no resolved destination yet: its profile is its directory entry's.
THRESHOLDS = [
    ("submitted", "A81001", "docman10", 300),
    ("submitted", "A81003", "emis_mesh", 300),
    ("ready", "A81001", "docman10", 3600),
    ("sending", "A81001", "docman10", 300),
    ("received", "A81001", "docman10", 4 * 3600),
    ("delivered", "A81001", "docman10", 3 * 24 * 3600),
    ("sending", "A81003", "emis_mesh", 300),
    ("received", "A81003", "emis_mesh", 24 * 3600),
]


def run_at(moment):
    with time_machine.travel(moment, tick=False):
        return watchdog_run()


def unresolved():
    return list(Incident.objects.exclude(state=IncidentState.RESOLVED))


@pytest.mark.parametrize(
    ("state", "destination", "endpoint_type", "seconds"), THRESHOLDS
)
def test_a_document_just_inside_its_threshold_raises_nothing(
    practices, state, destination, endpoint_type, seconds
):
    document_at(state, at=T0, destination=destination)

    run_at(T0 + timedelta(seconds=seconds - 1))

    assert unresolved() == []


@pytest.mark.parametrize(
    ("state", "destination", "endpoint_type", "seconds"), THRESHOLDS
)
def test_a_document_just_past_its_threshold_opens_one_incident_for_state_and_profile(
    practices, state, destination, endpoint_type, seconds
):
    document_at(state, at=T0, destination=destination)

    run_at(T0 + timedelta(seconds=seconds + 1))

    (incident,) = unresolved()
    assert incident.kind == IncidentKind.STUCK_DOCUMENTS
    assert incident.scope == f"{state}:{endpoint_type}"
    assert incident.details == {
        "state": state,
        "endpoint_type": endpoint_type,
        "count": 1,
        "oldest_seconds": seconds + 1,
        "threshold_seconds": seconds,
    }


def test_delivered_is_not_watched_where_the_profile_never_reports_accepted(practices):
    document_at("delivered", at=T0, destination="A81003")

    run_at(T0 + timedelta(days=30))

    assert unresolved() == []


def test_a_profile_threshold_edited_in_the_admin_is_used(practices):
    from docflow.models import DestinationProfile

    profile = DestinationProfile.objects.get(endpoint_type="docman10")
    profile.expected_seconds_in_state = {
        **profile.expected_seconds_in_state,
        "ready": 60,
    }
    profile.save(update_fields=["expected_seconds_in_state"])
    document_at("ready", at=T0)

    run_at(T0 + timedelta(seconds=59))
    assert unresolved() == []
    run_at(T0 + timedelta(seconds=61))
    assert [i.scope for i in unresolved()] == ["ready:docman10"]


def test_many_stuck_documents_make_one_incident_and_one_alert(practices):
    for _ in range(5):
        document_at("sending", at=T0)

    run_at(T0 + timedelta(seconds=301))
    run_at(T0 + timedelta(seconds=361))
    run_at(T0 + timedelta(seconds=421))

    (incident,) = unresolved()
    assert incident.details["count"] == 5
    assert incident.occurrences == 3
    assert list(incident.notifications.values_list("event", flat=True)) == [
        NotificationEvent.OPENED
    ]


def test_the_incident_resolves_itself_when_the_documents_move_on(practices):
    document = document_at("received", at=T0)
    run_at(T0 + timedelta(hours=5))
    (incident,) = unresolved()

    with time_machine.travel(T0 + timedelta(hours=5, minutes=1), tick=False):
        document_transition(document=document, transition="mark_accepted")
    run_at(T0 + timedelta(hours=5, minutes=2))

    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolved_at == T0 + timedelta(hours=5, minutes=2)
    assert list(incident.notifications.values_list("event", flat=True)) == [
        NotificationEvent.OPENED,
        NotificationEvent.RESOLVED,
    ]


def test_other_states_and_profiles_are_separate_incidents(practices):
    document_at("sending", at=T0)
    document_at("sending", at=T0, destination="A81003")
    document_at("received", at=T0)

    run_at(T0 + timedelta(days=2))

    assert sorted(i.scope for i in unresolved()) == [
        "received:docman10",
        "sending:docman10",
        "sending:emis_mesh",
    ]
    assert DocumentStatus.SENDING in {i.details["state"] for i in unresolved()}


def test_a_submitted_document_is_timed_before_preparation_resolves_its_destination(
    practices,
):
    document = document_at("submitted", at=T0, destination="A81003")
    assert document.destination is None

    run_at(T0 + timedelta(seconds=301))

    (incident,) = unresolved()
    assert incident.scope == "submitted:emis_mesh"
    assert incident.severity == "major"
    assert incident.summary == (
        "1 emis_mesh document(s) submitted for longer than 300 s"
    )


def test_submitted_documents_no_profile_is_known_for_count_under_unresolved(
    practices,
):
    document_at("submitted", at=T0, destination="B99999")  # not in the directory
    document_at("submitted", at=T0 + timedelta(seconds=30), destination="B99998")

    run_at(T0 + timedelta(seconds=299))
    assert unresolved() == []
    run_at(T0 + timedelta(seconds=331))

    (incident,) = unresolved()
    assert incident.scope == "submitted:unresolved"
    assert incident.details == {
        "state": "submitted",
        "endpoint_type": "unresolved",
        "count": 2,
        "oldest_seconds": 331,
        "threshold_seconds": 300,
    }


def test_a_profile_may_allow_submitted_documents_longer_than_the_site_default(
    practices, settings
):
    from docflow.models import DestinationProfile

    settings.DOCFLOW_OPS_DEFAULT_SECONDS_IN_STATE = {
        **settings.DOCFLOW_OPS_DEFAULT_SECONDS_IN_STATE,
        "submitted": 120,
    }
    profile = DestinationProfile.objects.get(endpoint_type="docman10")
    profile.expected_seconds_in_state = {
        **profile.expected_seconds_in_state,
        "submitted": 900,
    }
    profile.save(update_fields=["expected_seconds_in_state"])
    document_at("submitted", at=T0)  # docman10
    document_at("submitted", at=T0, destination="A81003")  # emis_mesh: site default

    run_at(T0 + timedelta(seconds=121))
    assert [i.scope for i in unresolved()] == ["submitted:emis_mesh"]
    run_at(T0 + timedelta(seconds=901))
    assert sorted(i.scope for i in unresolved()) == [
        "submitted:docman10",
        "submitted:emis_mesh",
    ]


def test_the_submitted_incident_resolves_once_preparation_takes_the_document(
    practices,
):
    from docflow.preparation import document_prepare

    document = document_at("submitted", at=T0)
    run_at(T0 + timedelta(seconds=400))
    (incident,) = unresolved()

    with time_machine.travel(T0 + timedelta(seconds=410), tick=False):
        assert document_prepare(document_id=document.pk).document.status == "ready"
    run_at(T0 + timedelta(seconds=420))

    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert unresolved() == []
