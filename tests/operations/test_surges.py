"""Surges against the real simulator: system errors pull the kill switch with one
incident; rejections per destination and per document type; automatic halts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from docflow.models import DocumentStatus
from operations.models import Incident, IncidentKind, IncidentState, NotificationEvent
from operations.services.surges import (
    outbound_halts_watch,
    rejection_surges_check,
    system_error_surge_check,
)
from tests.factories import SendingOrganisationFactory
from tests.operations.conftest import send_and_track
from transmissions.engine.controls import outbound_halt_open, outbound_resume
from transmissions.models import HaltKind, OutboundHalt, Transmission

pytestmark = pytest.mark.django_db


@pytest.fixture
def organisation(db):
    return SendingOrganisationFactory(ods_code="RX1", name="Example Hospitals")


@pytest.fixture
def thresholds(settings):
    settings.DOCFLOW_SURGE_THRESHOLD = 1000  # the per-organisation halt stays out
    settings.DOCFLOW_OPS_SYSTEM_ERROR_SURGE_MIN = 3
    settings.DOCFLOW_OPS_SYSTEM_ERROR_SURGE_RATE = 0.5
    settings.DOCFLOW_OPS_REJECTION_SURGE_MIN = 3
    settings.DOCFLOW_OPS_REJECTION_SURGE_RATE = 0.5


def unresolved(kind):
    return list(Incident.objects.filter(kind=kind).exclude(state="resolved"))


def test_a_system_error_surge_pulls_the_kill_switch_and_opens_one_incident(
    connected, thresholds, organisation
):
    documents = send_and_track(organisation, ["A81008"] * 3 + ["A81001"])
    assert [d.status for d in documents[:3]] == [DocumentStatus.SYSTEM_ERROR] * 3

    system_error_surge_check()
    system_error_surge_check()

    (halt,) = OutboundHalt.objects.filter(closed_at__isnull=True)
    assert halt.kind == HaltKind.KILL_SWITCH and halt.sending_organisation is None
    (incident,) = unresolved(IncidentKind.SYSTEM_ERROR_SURGE)
    assert "outbound halted by the kill switch" in incident.summary
    assert incident.details["halt_id"] == halt.pk
    assert incident.details["errors"] == 3
    assert incident.notifications.count() == 1


def test_errors_under_the_rate_raise_nothing(connected, thresholds, organisation):
    send_and_track(organisation, ["A81008"] * 3 + ["A81001"] * 4)

    assert system_error_surge_check() is None

    assert not OutboundHalt.objects.exists()
    assert not Incident.objects.exists()


def test_the_surge_incident_resolves_once_an_operator_resumes_outbound(
    connected, thresholds, organisation, settings
):
    send_and_track(organisation, ["A81008"] * 3)
    system_error_surge_check()
    settings.DOCFLOW_SURGE_WINDOW_SECONDS = 0  # the surge has passed

    assert system_error_surge_check() is not None  # still halted: still open
    outbound_resume(reason="Connect fixed", actor=None)
    system_error_surge_check()

    (incident,) = Incident.objects.all()
    assert incident.state == IncidentState.RESOLVED
    assert list(incident.notifications.values_list("event", flat=True)) == [
        NotificationEvent.OPENED,
        NotificationEvent.RESOLVED,
    ]


def test_rejection_surges_open_one_incident_per_destination_and_document_type(
    connected, thresholds, organisation
):
    send_and_track(organisation, ["A81005"] * 3 + ["A81001"])

    scopes = rejection_surges_check()
    rejection_surges_check()

    assert scopes == {"destination:A81005", "document_type:discharge_summary"}
    incidents = unresolved(IncidentKind.REJECTION_SURGE)
    assert sorted(i.scope for i in incidents) == sorted(scopes)
    assert all(i.notifications.count() == 1 for i in incidents)


def test_rejection_surges_by_document_type_read_the_transmissions_not_the_documents(
    connected, thresholds, organisation
):
    send_and_track(organisation, ["A81005"] * 3, document_type="clinic_letter")
    send_and_track(organisation, ["A81001"] * 3, document_type="result")
    # Each transmission carries its document's type from the start.
    assert (
        sorted(Transmission.objects.values_list("document_type", flat=True))
        == ["clinic_letter"] * 3 + ["result"] * 3
    )

    with CaptureQueriesContext(connection) as captured:
        scopes = rejection_surges_check()

    assert scopes == {"destination:A81005", "document_type:clinic_letter"}
    assert not [
        query["sql"]
        for query in captured.captured_queries
        if "docflow_document" in query["sql"]
    ]
    incident = Incident.objects.get(scope="document_type:clinic_letter")
    assert (incident.details["rejected"], incident.details["total"]) == (3, 3)


def test_rejection_surges_resolve_when_the_window_moves_on(
    connected, thresholds, organisation, settings
):
    send_and_track(organisation, ["A81005"] * 3)
    rejection_surges_check()
    settings.DOCFLOW_SURGE_WINDOW_SECONDS = 0

    assert rejection_surges_check() == set()

    assert unresolved(IncidentKind.REJECTION_SURGE) == []
    assert Incident.objects.filter(state=IncidentState.RESOLVED).count() == 2


def test_each_automatic_halt_is_one_incident_until_it_is_lifted(organisation):
    halt = outbound_halt_open(
        kind=HaltKind.TOKEN_FAILURE,
        reason="Connect refused our credentials",
        sending_organisation=organisation,
    )
    outbound_halt_open(kind=HaltKind.KILL_SWITCH, reason="operator", actor=None)

    assert outbound_halts_watch() == {"token_failure:RX1"}
    outbound_halts_watch()
    (incident,) = unresolved(IncidentKind.OUTBOUND_HALTED)
    assert incident.details["halt_id"] == halt.pk

    outbound_resume(reason="rotated", actor=None, sending_organisation=organisation)
    outbound_halts_watch()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
