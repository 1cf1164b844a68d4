"""Who works an item: assigning, taking, handing back, and reopening, each in the
item's history with the user and the reason."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from audit.models import AuditEvent
from casework.errors import (
    DocumentStateError,
    WorkItemInvalid,
    WorkItemPermissionDenied,
    WorkItemStateError,
)
from casework.models import WorkItemStatus
from casework.services import (
    work_item_assign,
    work_item_reopen,
    work_item_resolve_no_further_action,
    work_item_resolve_resend,
    work_item_sync_for_document,
    work_item_unassign,
)
from docflow.services import document_transition
from tests.casework.factories import (
    CLINICAL_ADMIN,
    document_in,
    open_item,
    staff,
)
from tests.factories import SendingOrganisationFactory

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def item(sending_organisation, practices):
    document = document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ02"
    )
    return open_item(document)


def changes(item):
    return [
        (row.status, row.assignee, row.history_user, row.history_change_reason)
        for row in item.history.order_by("history_id")
    ]


def test_assign_reassign_and_hand_back_are_each_in_the_history(
    item, clinician, colleague
):
    work_item_assign(work_item=item, assignee=colleague, actor=clinician)
    work_item_assign(
        work_item=item,
        assignee=clinician,
        actor=clinician,
        reason="Bo is on leave",
        holder_confirmed=True,
    )
    work_item_unassign(work_item=item, actor=clinician, reason="Off sick")

    item.refresh_from_db()
    assert (item.status, item.assignee) == (WorkItemStatus.OPEN, None)
    assert changes(item) == [
        ("open", None, None, "Document rejected: REJ02"),
        ("assigned", colleague, clinician, "Assigned to bo"),
        ("assigned", clinician, clinician, "Bo is on leave"),
        ("open", None, clinician, "Off sick"),
    ]
    actions = list(
        AuditEvent.objects.filter(target_type="work_item")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "work_item.opened",
        "work_item.assigned",
        "work_item.assigned",
        "work_item.unassigned",
    ]
    reassigned = AuditEvent.objects.filter(action="work_item.assigned").last()
    assert reassigned.data["previous_assignee"] == "bo"


def test_assigning_to_the_current_assignee_changes_nothing(item, clinician):
    work_item_assign(work_item=item, assignee=clinician, actor=clinician)
    work_item_assign(work_item=item, assignee=clinician, actor=clinician)

    assert item.history.count() == 2
    assert AuditEvent.objects.filter(action="work_item.assigned").count() == 1


def test_an_operator_may_take_their_teams_item_but_not_give_it_away(
    sending_organisation, practices, operator, clinician
):
    document = document_in(
        "system_error", sending_organisation=sending_organisation, reason="5000"
    )
    item = open_item(document)

    with pytest.raises(WorkItemInvalid) as refused:
        work_item_assign(work_item=item, assignee=clinician, actor=operator)
    assert refused.value.code == "assignee_not_allowed"

    work_item_assign(work_item=item, assignee=operator, actor=operator)
    item.refresh_from_db()
    assert (item.status, item.assignee) == ("assigned", operator)


def test_assigning_someone_who_cannot_work_the_item_is_refused(item, clinician):
    outsider = staff(
        CLINICAL_ADMIN, organisations=[SendingOrganisationFactory(ods_code="RY2")]
    )
    viewer = staff("IG officer", organisations=[item.document.sending_organisation])

    for person in (outsider, viewer):
        with pytest.raises(WorkItemInvalid):
            work_item_assign(work_item=item, assignee=person, actor=clinician)

    item.refresh_from_db()
    assert item.status == WorkItemStatus.OPEN


def test_giving_an_item_to_someone_else_needs_the_assign_role(
    item, sending_organisation, clinical_team, clinician
):
    worker = staff(None, organisations=[sending_organisation], teams=[clinical_team])

    with pytest.raises(WorkItemPermissionDenied):
        work_item_assign(work_item=item, assignee=clinician, actor=worker)


def test_an_ended_item_cannot_be_assigned(item, clinician, colleague):
    work_item_resolve_no_further_action(
        work_item=item, actor=clinician, reason="Duplicate"
    )

    with pytest.raises(WorkItemStateError):
        work_item_assign(work_item=item, assignee=colleague, actor=clinician)


def test_unassigning_an_open_item_is_refused(item, clinician):
    with pytest.raises(WorkItemStateError) as refused:
        work_item_unassign(work_item=item, actor=clinician)

    assert refused.value.code == "not_assigned"


def test_reopen_after_no_further_action_is_due_again_by_the_bucket_rule(
    item, clinician, colleague
):
    work_item_assign(work_item=item, assignee=colleague, actor=clinician)
    work_item_resolve_no_further_action(
        work_item=item, actor=colleague, reason="Patient moved abroad"
    )

    with time_machine.travel(NOW, tick=False):
        work_item_reopen(
            work_item=item, actor=clinician, reason="Patient is back; find GP"
        )

    item.refresh_from_db()
    assert (item.status, item.assignee, item.resolution) == ("open", None, "")
    assert item.due_at == NOW + dt.timedelta(hours=24)
    last = item.history.order_by("-history_id").first()
    assert (last.history_user, last.history_change_reason) == (
        clinician,
        "Patient is back; find GP",
    )
    previous = item.history.order_by("-history_id")[1]
    assert (previous.resolution, previous.history_user) == (
        "no_further_action",
        colleague,
    )
    event = AuditEvent.objects.get(action="work_item.reopened")
    assert event.data["previous_resolution"] == "no_further_action"


def test_reopen_refusals(item, clinician, operator):
    with pytest.raises(WorkItemStateError):
        work_item_reopen(work_item=item, actor=clinician, reason="Still open")

    work_item_resolve_resend(work_item=item, actor=clinician, reason="Agreed")
    # The document is on its way again (ready): nothing to reopen for yet.
    with pytest.raises(DocumentStateError) as in_flight:
        work_item_reopen(work_item=item, actor=clinician, reason="Check")
    assert in_flight.value.code == "document_in_flight"

    with pytest.raises(WorkItemInvalid):
        work_item_reopen(work_item=item, actor=clinician, reason="")
    with pytest.raises(WorkItemPermissionDenied):
        work_item_reopen(work_item=item, actor=operator, reason="Check")

    item.refresh_from_db()
    assert item.status == WorkItemStatus.RESOLVED


def test_reopen_is_refused_beside_another_open_item(
    sending_organisation, practices, clinician
):
    document = document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ02"
    )
    first = open_item(document)
    work_item_resolve_resend(work_item=first, actor=clinician, reason="Agreed")
    document.refresh_from_db()
    for transition in ("claim_for_sending", "mark_received", "mark_rejected"):
        document = document_transition(
            document=document, transition=transition, reason="REJ02"
        )
    work_item_sync_for_document(document=document)

    with pytest.raises(WorkItemStateError) as refused:
        work_item_reopen(work_item=first, actor=clinician, reason="Same problem")

    assert refused.value.code == "another_open"
