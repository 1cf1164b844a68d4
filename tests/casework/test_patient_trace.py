"""Re-tracing a work item's patient on PDS, against the real PDS simulator: what is
recorded for each answer, the audit event and access-log row, and every refusal."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group

from audit.models import AccessLog, AuditEvent
from casework.errors import WorkItemError, WorkItemPermissionDenied, WorkItemStateError
from casework.models import PatientTrace, PatientTraceOutcome
from casework.services import work_item_resolve_no_further_action
from casework.services.tracing import work_item_patient_trace
from casework.trace_selectors import work_item_latest_patient_trace
from tests.casework.factories import (
    CLINICAL_ADMIN,
    INTEGRATION_OPERATOR,
    document_in,
    open_item,
    staff,
)

Outcome = PatientTraceOutcome
NOT_FOUND = "9991001697"


def rejected_item(sending_organisation, nhs_number: str, reason: str = "REJ01"):
    document = document_in(
        "rejected",
        sending_organisation=sending_organisation,
        reason=reason,
        nhs_number=nhs_number,
    )
    return open_item(document)


@pytest.fixture
def trace(pds_simulator, sending_organisation, practices, clinician):
    """Trace a new rejected item for this NHS number as the clinical admin."""

    def run(nhs_number: str, reason: str = "REJ01"):
        item = rejected_item(sending_organisation, nhs_number, reason)
        return work_item_patient_trace(work_item=item, actor=clinician)

    return run


def test_moved_patient_records_the_new_practice_audit_event_and_access_log(
    trace, clinician
):
    result = trace("9990000425")
    assert result.outcome == Outcome.FOUND
    assert (result.practice_ods_code, result.practice_since) == (
        "A81002",
        datetime.date(2026, 11, 3),
    )
    assert not (result.deceased or result.restricted or result.superseded)
    assert result.actor == clinician
    assert result.document == result.work_item.document
    event = AuditEvent.objects.get(action="work_item.patient_traced")
    assert event.target_id == str(result.work_item.public_id)
    assert event.actor_id == str(clinician.pk)
    assert event.data["outcome"] == "found"
    assert event.data["practice_ods_code"] == "A81002"
    assert event.data["trace"] == str(result.public_id)
    log = AccessLog.objects.get()
    assert (log.action, log.target_type) == ("pds_trace", "document")
    assert log.target_id == str(result.document.public_id)
    assert log.actor_id == str(clinician.pk)
    assert str(result.work_item.public_id) in log.reason
    assert AuditEvent.objects.filter(
        action="content.pds_trace", data__access_log_id=log.pk
    ).exists()


def test_no_patient_data_in_the_audit_event_or_the_access_log(trace):
    result = trace("9990000425")
    texts = [str(e.data) for e in AuditEvent.objects.all()]
    texts += [row.reason for row in AccessLog.objects.all()]
    assert all(result.document.nhs_number not in text for text in texts)


def test_deceased_patient_is_recorded_as_deceased_with_the_date(trace):
    result = trace("9990001197", "REJ07")
    assert result.outcome == Outcome.FOUND
    assert result.deceased
    assert result.deceased_on == datetime.date(2026, 10, 20)
    assert result.practice_ods_code == ""


def test_restricted_record_is_flagged_with_no_practice(trace):
    result = trace("9990001278", "REJ02")
    assert result.restricted
    assert result.practice_ods_code == ""
    assert result.practice_since is None


def test_superseded_number_is_flagged_and_the_new_number_is_not_kept(trace):
    result = trace("9990001332", "REJ06")
    assert result.superseded
    assert result.practice_ods_code == "A81001"
    stored = {
        field.attname: getattr(result, field.attname)
        for field in PatientTrace._meta.concrete_fields
    }
    assert "9991000135" not in str(stored)
    assert "9991000135" not in str(
        list(AuditEvent.objects.values_list("data", flat=True))
    )


@pytest.mark.parametrize(
    ("nhs_number", "outcome"),
    [
        ("9991001042", Outcome.INVALIDATED),
        (NOT_FOUND, Outcome.NOT_FOUND),
        ("9990001405", Outcome.UNAVAILABLE),
        ("9991001301", Outcome.UNAVAILABLE),  # times out
        ("9991001433", Outcome.UNAVAILABLE),  # 429
        ("9991001565", Outcome.UNAVAILABLE),  # malformed answer: ask again later
        ("9991001824", Outcome.UNAVAILABLE),  # an HTML page, not FHIR JSON
    ],
)
def test_no_answer_is_recorded_with_its_outcome_and_still_audited(
    trace, nhs_number, outcome
):
    result = trace(nhs_number)
    assert result.outcome == outcome
    assert result.practice_ods_code == ""
    assert AuditEvent.objects.get(action="work_item.patient_traced").data[
        "outcome"
    ] == str(outcome)
    assert AccessLog.objects.count() == 1
    assert nhs_number not in result.error_text


def test_unavailable_says_why_without_patient_data(trace):
    result = trace("9990001405")
    assert "503" in result.error_text


def test_pds_not_running_is_recorded_as_unavailable(
    pds_not_running, sending_organisation, practices, clinician
):
    item = rejected_item(sending_organisation, "9990000425")
    result = work_item_patient_trace(work_item=item, actor=clinician)
    assert result.outcome == Outcome.UNAVAILABLE
    assert "could not be reached" in result.error_text


def test_unsafe_pds_url_is_recorded_as_failed(
    settings, sending_organisation, practices, clinician
):
    settings.DOCFLOW_PDS_BASE_URL = "http://pds.example.org"
    item = rejected_item(sending_organisation, "9990000425")
    result = work_item_patient_trace(work_item=item, actor=clinician)
    assert result.outcome == Outcome.FAILED
    assert "https" in result.error_text


@pytest.mark.parametrize("reason", ["REJ03", "REJ04", "REJ99"])
def test_other_rejections_are_refused_before_asking_pds(
    pds_simulator, sending_organisation, practices, clinician, reason
):
    item = rejected_item(sending_organisation, "9990000425", reason)
    with pytest.raises(WorkItemError, match="REJ01, REJ02, REJ06 and REJ07"):
        work_item_patient_trace(work_item=item, actor=clinician)
    assert not PatientTrace.objects.exists()
    assert not AccessLog.objects.exists()


def test_items_that_are_not_rejections_are_refused(
    pds_simulator, sending_organisation, practices, operations_team
):
    # A clinical admin who also works the operations team's items sees this one.
    supervisor = staff(
        CLINICAL_ADMIN,
        organisations=[sending_organisation],
        teams=[operations_team],
        username="sam",
    )
    document = document_in("system_error", sending_organisation=sending_organisation)
    with pytest.raises(WorkItemError, match="this item is not a rejection"):
        work_item_patient_trace(work_item=open_item(document), actor=supervisor)
    assert not PatientTrace.objects.exists()


def test_an_ended_item_is_refused(
    pds_simulator, sending_organisation, practices, clinician
):
    item = rejected_item(sending_organisation, "9990000425")
    work_item_resolve_no_further_action(
        work_item=item, reason="Patient seen in clinic.", actor=clinician
    )
    with pytest.raises(WorkItemStateError):
        work_item_patient_trace(work_item=item, actor=clinician)


def test_roles_without_the_trace_permission_are_refused(
    pds_simulator, sending_organisation, practices, operator
):
    item = rejected_item(sending_organisation, "9990000425")
    with pytest.raises(WorkItemPermissionDenied):
        work_item_patient_trace(work_item=item, actor=operator)
    assert not PatientTrace.objects.exists()


def test_a_clinical_admin_of_another_trust_is_refused(
    pds_simulator, sending_organisation, practices
):
    item = rejected_item(sending_organisation, "9990000425")
    outsider = staff(CLINICAL_ADMIN, organisations=[], username="zed")
    with pytest.raises(WorkItemPermissionDenied):
        work_item_patient_trace(work_item=item, actor=outsider)


def test_the_system_cannot_trace(pds_simulator, sending_organisation, practices):
    item = rejected_item(sending_organisation, "9990000425")
    with pytest.raises(WorkItemPermissionDenied):
        work_item_patient_trace(work_item=item, actor=None)


def test_clinical_admins_hold_the_permission_and_operators_do_not(db):
    def codenames(role):
        return set(
            Group.objects.get(name=role).permissions.values_list("codename", flat=True)
        )

    assert "trace_patient" in codenames(CLINICAL_ADMIN)
    assert "trace_patient" not in codenames(INTEGRATION_OPERATOR)


def test_latest_trace_is_the_newest_and_only_for_those_who_may_trace(
    pds_simulator, sending_organisation, practices, clinician, operator
):
    item = rejected_item(sending_organisation, "9990001405")
    first = work_item_patient_trace(work_item=item, actor=clinician)
    pds_simulator.app.patients["9990001405"] = {
        "nhs_number": "9990001405",
        "case": "registered",
        "practice": "A81002",
        "since": "2026-11-03",
    }
    second = work_item_patient_trace(work_item=item, actor=clinician)
    assert first.outcome == Outcome.UNAVAILABLE
    assert work_item_latest_patient_trace(user=clinician, work_item=item) == second
    assert work_item_latest_patient_trace(user=operator, work_item=item) is None
