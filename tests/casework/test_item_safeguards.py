"""Safeguards on acting on a work item: a reroute needs a confirmation for the
practice and the version shown, a stale page is refused with what changed, an item
someone else holds needs the actor's confirmation, actions that cannot succeed are
not offered, and the patient is shown only on request, access-logged."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from audit.models import AccessLog, AuditEvent
from casework.errors import (
    DocumentStateError,
    RerouteNotConfirmed,
    RerouteRefused,
    WorkItemHeldByOther,
    WorkItemInvalid,
    WorkItemPermissionDenied,
    WorkItemStale,
)
from casework.models import WorkItemStatus
from casework.selectors import work_item_actions, work_item_page
from casework.services import (
    RerouteConfirmation,
    work_item_assign,
    work_item_patient_reveal,
    work_item_resolve_no_further_action,
    work_item_resolve_reroute,
    work_item_resolve_resend,
    work_item_unassign,
)
from docflow.models import DocumentStatus, Organisation, OrganisationStatus
from tests.casework.factories import (
    CLINICAL_ADMIN,
    confirmed,
    document_in,
    fresh,
    open_item,
    queued,
)
from tests.samples import VALID_NHS_NUMBER


@pytest.fixture
def rejected(sending_organisation, practices):
    return document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ01"
    )


def assert_not_rerouted(document) -> None:
    document.refresh_from_db()
    assert (document.status, document.destination_ods_code) == (
        DocumentStatus.REJECTED,
        "A81001",
    )
    assert open_item(document).status in (WorkItemStatus.OPEN, WorkItemStatus.ASSIGNED)
    assert not AuditEvent.objects.filter(action="document.rerouted").exists()
    assert queued() == []


# Reroute confirmation


def test_reroute_is_refused_without_a_confirmation(rejected, clinician):
    with pytest.raises(RerouteNotConfirmed) as refused:
        work_item_resolve_reroute(
            work_item=open_item(rejected), ods_code="A81002", actor=clinician
        )

    assert refused.value.code == "not_confirmed"
    assert_not_rerouted(rejected)


def test_reroute_is_refused_when_the_confirmation_names_another_practice(
    rejected, clinician
):
    item = open_item(rejected)

    with pytest.raises(RerouteNotConfirmed) as refused:
        work_item_resolve_reroute(
            work_item=item,
            ods_code="A81002",
            actor=clinician,
            confirmation=confirmed(item, "A81003"),
        )

    assert "You confirmed A81003, not A81002" in refused.value.message
    assert_not_rerouted(rejected)


@pytest.mark.parametrize(
    ("ods_code", "code"),
    [
        ("A81006", "inactive"),
        ("B99999", "unknown"),
        ("A81001", "same_destination"),
    ],
)
def test_a_confirmed_reroute_is_still_refused_to_an_inactive_unknown_or_same_practice(
    rejected, clinician, ods_code, code
):
    item = open_item(rejected)

    with pytest.raises(RerouteRefused) as refused:
        work_item_resolve_reroute(
            work_item=item,
            ods_code=ods_code,
            actor=clinician,
            confirmation=confirmed(item, ods_code),
        )

    assert refused.value.code == code
    assert_not_rerouted(rejected)


def test_a_reroute_confirmed_on_a_page_the_item_has_moved_on_from_is_refused(
    rejected, clinician, colleague
):
    item = open_item(rejected)
    shown = confirmed(item, "A81002")  # the confirmation page, as it was loaded
    work_item_assign(work_item=item, assignee=colleague, actor=colleague)

    with pytest.raises(WorkItemStale) as refused:
        work_item_resolve_reroute(
            work_item=item,
            ods_code="A81002",
            actor=clinician,
            confirmation=shown,
            holder_confirmed=True,
        )

    message = refused.value.message
    assert message.startswith("This item changed since you opened it: assigned to bo")
    assert message.endswith("Review it and try again.")
    assert_not_rerouted(rejected)


def test_a_confirmed_reroute_at_the_current_version_resolves_the_item(
    rejected, clinician
):
    item = open_item(rejected)

    resolved = work_item_resolve_reroute(
        work_item=item,
        ods_code="a81002",
        actor=clinician,
        reason="PDS shows A81002",
        confirmation=RerouteConfirmation(ods_code="A81002", version=item.version),
    )

    assert (resolved.status, resolved.resolution) == (
        WorkItemStatus.RESOLVED,
        "reroute",
    )
    assert resolved.version == item.version + 1


# Versions and stale pages


def test_every_write_moves_the_item_one_version_on(rejected, clinician, colleague):
    item = open_item(rejected)
    assert item.version == 1

    item = work_item_assign(work_item=item, assignee=colleague, actor=clinician)
    assert item.version == 2
    item = work_item_unassign(work_item=item, actor=colleague)
    assert item.version == 3
    assert [row.version for row in item.history.order_by("history_id")] == [1, 2, 3]


def test_an_action_on_an_older_version_is_refused_and_nothing_is_done(
    rejected, clinician, colleague
):
    item = open_item(rejected)
    loaded = item.version
    work_item_assign(work_item=item, assignee=colleague, actor=colleague)
    work_item_unassign(work_item=item, actor=colleague, reason="Not mine")

    with pytest.raises(WorkItemStale) as refused:
        work_item_resolve_no_further_action(
            work_item=item,
            actor=clinician,
            reason="Duplicate",
            expected_version=loaded,
        )

    assert "returned to the team queue by bo" in refused.value.message
    item.refresh_from_db()
    assert (item.status, item.version) == (WorkItemStatus.OPEN, loaded + 2)


def test_an_action_at_the_current_version_goes_ahead(rejected, clinician):
    item = open_item(rejected)

    taken = work_item_assign(
        work_item=item,
        assignee=clinician,
        actor=clinician,
        expected_version=item.version,
    )

    assert taken.assignee == clinician


# Someone else holds the item


def test_acting_on_an_item_someone_else_holds_needs_confirmation(
    rejected, clinician, colleague
):
    item = work_item_assign(
        work_item=open_item(rejected), assignee=colleague, actor=colleague
    )

    with pytest.raises(WorkItemHeldByOther) as refused:
        work_item_resolve_no_further_action(
            work_item=item, actor=clinician, reason="Duplicate"
        )
    assert refused.value.message.startswith("bo holds this item.")
    item.refresh_from_db()
    assert (item.status, item.assignee) == (WorkItemStatus.ASSIGNED, colleague)

    work_item_resolve_no_further_action(
        work_item=item, actor=clinician, reason="Duplicate", holder_confirmed=True
    )
    item.refresh_from_db()
    assert item.status == WorkItemStatus.RESOLVED


@pytest.mark.parametrize("action", ["take", "unassign", "resend"])
def test_taking_unassigning_or_resending_a_held_item_is_refused_unconfirmed(
    rejected, clinician, colleague, action
):
    item = work_item_assign(
        work_item=open_item(rejected), assignee=colleague, actor=colleague
    )
    calls = {
        "take": lambda: work_item_assign(
            work_item=item, assignee=clinician, actor=clinician
        ),
        "unassign": lambda: work_item_unassign(work_item=item, actor=clinician),
        "resend": lambda: work_item_resolve_resend(
            work_item=item, actor=clinician, reason="Ask again"
        ),
    }

    with pytest.raises(WorkItemHeldByOther):
        calls[action]()

    item.refresh_from_db()
    assert (item.status, item.assignee, item.version) == (
        WorkItemStatus.ASSIGNED,
        colleague,
        2,
    )


def test_the_holder_acts_on_their_own_item_without_confirming(rejected, colleague):
    item = work_item_assign(
        work_item=open_item(rejected), assignee=colleague, actor=colleague
    )

    work_item_resolve_no_further_action(
        work_item=item, actor=colleague, reason="Duplicate"
    )

    item.refresh_from_db()
    assert item.status == WorkItemStatus.RESOLVED


# Actions that cannot succeed


def test_resend_to_a_practice_closed_since_is_refused_and_not_offered(
    rejected, clinician
):
    Organisation.objects.filter(ods_code="A81001").update(
        status=OrganisationStatus.CLOSED
    )
    item = open_item(rejected)

    with pytest.raises(DocumentStateError) as refused:
        work_item_resolve_resend(work_item=item, actor=clinician, reason="Again")

    assert refused.value.code == "inactive"
    assert queued() == []
    assert "resend" not in work_item_actions(user=clinician, work_item=item)
    page = work_item_page(user=clinician, public_id=item.public_id)
    assert "resend" not in page.actions
    assert page.unavailable["resend"].startswith("Resend is not available:")
    assert "closed in the directory" in page.unavailable["resend"]


def test_reroute_is_not_offered_when_no_other_practice_is_active(rejected, clinician):
    Organisation.objects.exclude(ods_code="A81001").update(
        status=OrganisationStatus.INACTIVE
    )
    item = open_item(rejected)

    page = work_item_page(user=clinician, public_id=item.public_id)

    assert "reroute" not in page.actions
    assert "no other active practice" in page.unavailable["reroute"]
    assert "resend" in page.actions


# The patient, on request


def test_revealing_the_patient_writes_an_access_log_row_with_the_reason(
    rejected, clinician
):
    item = open_item(rejected)

    identity = work_item_patient_reveal(
        work_item=item, actor=clinician, reason="Trace on PDS"
    )

    assert (
        identity.nhs_number
        == f"{VALID_NHS_NUMBER[:3]} {VALID_NHS_NUMBER[3:6]} " + (VALID_NHS_NUMBER[6:])
    )
    assert identity.name == "TESTPATIENT, Alex"
    assert identity.birth_date.isoformat() == "1950-03-01"
    log = AccessLog.objects.get()
    assert (log.actor_label, log.channel, log.action, log.reason) == (
        "ada",
        "staff_page",
        "reveal_patient",
        "Trace on PDS",
    )
    assert log.target_id == str(rejected.public_id)
    event = AuditEvent.objects.get(action="content.reveal_patient")
    assert VALID_NHS_NUMBER not in str(event.data)


def test_revealing_the_patient_needs_the_permission(rejected, clinician):
    Group.objects.get(name=CLINICAL_ADMIN).permissions.remove(
        Permission.objects.get(codename="view_patient_identity")
    )

    with pytest.raises(WorkItemPermissionDenied):
        work_item_patient_reveal(
            work_item=open_item(rejected), actor=fresh(clinician), reason="Trace"
        )

    assert AccessLog.objects.count() == 0


def test_revealing_the_patient_needs_a_reason(rejected, clinician):
    with pytest.raises(WorkItemInvalid) as refused:
        work_item_patient_reveal(
            work_item=open_item(rejected), actor=clinician, reason="  "
        )

    assert refused.value.code == "reason_required"
    assert AccessLog.objects.count() == 0


def test_only_the_clinical_admin_role_may_reveal_patients_or_view_content(db):
    holders = {
        group.name
        for group in Group.objects.filter(
            permissions__codename__in=["view_patient_identity", "view_document_content"]
        )
    }

    assert holders == {CLINICAL_ADMIN}
