"""A person's resolutions: what each does to the document, the item, its history
and the audit trail, what it queues for Connect, and every refusal."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import remove_perm

from audit.models import AuditEvent
from casework.errors import (
    DocumentStateError,
    RerouteRefused,
    WorkItemInvalid,
    WorkItemPermissionDenied,
    WorkItemStateError,
)
from casework.models import Team, WorkItem, WorkItemStatus
from casework.services import (
    work_item_cancel_document,
    work_item_resolve_corrected_version,
    work_item_resolve_no_further_action,
    work_item_resolve_other_route,
    work_item_resolve_reroute,
    work_item_resolve_resend,
)
from docflow.models import DestinationProfile, Document, DocumentStatus, PayloadStage
from tests.casework.factories import (
    CLINICAL_ADMIN,
    confirmed,
    document_in,
    open_item,
    queued,
    staff,
)
from tests.factories import (
    OrganisationFactory,
    SendingOrganisationFactory,
    UserFactory,
)
from tests.samples import docm_bytes, exe_bytes, pdf_bytes

S = DocumentStatus
RESEND_TASK = "transmissions.tasks.resend_document"
SEND_TASK = "transmissions.tasks.send_document"


def javascript_pdf() -> bytes:
    """A PDF that runs a script when opened: intake refuses it, so must corrections."""
    from tests.security.test_uploads import build_pdf

    return build_pdf(
        catalog=b"/OpenAction 6 0 R",
        extra=(b"<< /Type /Action /S /JavaScript /JS (app.alert(1)) >>",),
    )


PREPARE_TASK = "transmissions.tasks.prepare_document"
RESOLVE_TASK = "transmissions.tasks.resolve_rejection_at_connect"


@pytest.fixture
def supervisor(sending_organisation, operations_team):
    """A clinical admin also granted the operations team's items."""
    return staff(
        CLINICAL_ADMIN,
        organisations=[sending_organisation],
        teams=[operations_team],
        username="sam",
    )


@pytest.fixture
def rejected(sending_organisation, practices):
    """A document the practice rejected: REJ01, patient no longer registered."""
    return document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ01"
    )


def in_state(state, sending_organisation, reason=""):
    return document_in(state, sending_organisation=sending_organisation, reason=reason)


def last_change(item: WorkItem):
    return item.history.order_by("-history_id").first()


def resolved_events():
    return list(
        AuditEvent.objects.filter(
            action__in=["work_item.resolved", "work_item.cancelled"]
        )
    )


def assert_untouched(document: Document, status: str) -> None:
    document.refresh_from_db()
    assert document.status == status
    assert open_item(document).status == WorkItemStatus.OPEN
    assert resolved_events() == []


# Resend unchanged


def test_resend_requeues_a_rejection_and_queues_a_connect_resend(
    rejected, clinician, django_capture_on_commit_callbacks
):
    item = open_item(rejected)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_resend(
            work_item=item, actor=clinician, reason="Practice re-registered them"
        )

    rejected.refresh_from_db()
    item.refresh_from_db()
    assert rejected.status == S.READY
    assert (item.status, item.resolution) == ("resolved", "resend")
    assert (item.closed_by, item.resolution_reason) == (
        clinician,
        "Practice re-registered them",
    )
    assert queued() == [(RESEND_TASK, (rejected.pk,))]
    change = last_change(item)
    assert change.history_user == clinician
    assert change.history_change_reason == (
        "Resent unchanged: Practice re-registered them"
    )
    [event] = resolved_events()
    assert (event.actor_label, event.data["resolution"]) == ("ada", "resend")
    assert event.data["reason"] == "Practice re-registered them"
    requeued = AuditEvent.objects.get(action="document.requeue")
    assert requeued.data["work_item"] == str(item.public_id)


@pytest.mark.parametrize(
    ("state", "reason", "task"),
    [
        ("system_error", "5000", RESEND_TASK),
        ("system_error", "7000", RESEND_TASK),
        ("rejected", "REJ05", RESEND_TASK),
        ("held_after_send", "RETRIES_EXHAUSTED", SEND_TASK),
    ],
)
def test_resend_of_infrastructure_problems_by_an_operator(
    sending_organisation,
    practices,
    operator,
    state,
    reason,
    task,
    django_capture_on_commit_callbacks,
):
    document = in_state(state, sending_organisation, reason)
    item = open_item(document)
    assert item.bucket.key == "infrastructure"

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_resend(work_item=item, actor=operator)

    document.refresh_from_db()
    item.refresh_from_db()
    assert document.status == S.READY
    assert item.status == WorkItemStatus.RESOLVED
    assert queued() == [(task, (document.pk,))]
    assert last_change(item).history_change_reason == "Resent unchanged"
    assert last_change(item).history_user == operator


def test_resend_of_an_undelivered_document_posts_it_again(
    sending_organisation, practices, clinician, django_capture_on_commit_callbacks
):
    document = in_state("undelivered", sending_organisation, "NEVER_ACKNOWLEDGED")

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_resend(
            work_item=open_item(document), actor=clinician, reason="Not in workflow"
        )

    document.refresh_from_db()
    assert document.status == S.READY
    assert queued() == [(SEND_TASK, (document.pk,))]


def test_resend_of_a_clinical_rejection_needs_a_reason(rejected, clinician):
    with pytest.raises(WorkItemInvalid) as refused:
        work_item_resolve_resend(work_item=open_item(rejected), actor=clinician)

    assert refused.value.code == "reason_required"
    assert_untouched(rejected, S.REJECTED)


def test_resolving_twice_is_refused(rejected, clinician, colleague):
    item = open_item(rejected)
    work_item_resolve_resend(work_item=item, actor=clinician, reason="Asked to")

    with pytest.raises(WorkItemStateError) as refused:
        work_item_resolve_no_further_action(
            work_item=item, actor=colleague, reason="Too late"
        )

    assert refused.value.code == "already_ended"
    assert "resolved" in refused.value.message
    item.refresh_from_db()
    assert (item.resolution, item.closed_by) == ("resend", clinician)
    assert len(resolved_events()) == 1


def test_resend_of_a_document_held_for_an_unknown_destination_is_refused(
    sending_organisation, clinician
):
    document = in_state("held", sending_organisation)  # DEST_UNKNOWN

    with pytest.raises(DocumentStateError) as refused:
        work_item_resolve_resend(work_item=open_item(document), actor=clinician)

    assert refused.value.code == "unknown"
    assert "Reroute it" in refused.value.message
    assert_untouched(document, S.HELD)


def test_nothing_is_resent_while_the_outcome_is_unknown(
    sending_organisation, practices, operator
):
    document = in_state("outcome_unknown", sending_organisation, "TIMEOUT_AFTER_SEND")

    with pytest.raises(DocumentStateError) as refused:
        work_item_resolve_resend(work_item=open_item(document), actor=operator)

    assert refused.value.code == "outcome_unknown"
    assert "duplicate" in refused.value.message
    assert_untouched(document, S.OUTCOME_UNKNOWN)


# Reroute


def test_reroute_a_rejection_to_another_active_practice(
    rejected, clinician, django_capture_on_commit_callbacks
):
    item = open_item(rejected)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_reroute(
            work_item=item,
            ods_code="a81002",
            actor=clinician,
            reason="PDS shows Hillview",
            confirmation=confirmed(item, "a81002"),
        )

    rejected.refresh_from_db()
    item.refresh_from_db()
    assert rejected.status == S.READY
    assert (rejected.destination_ods_code, rejected.destination.ods_code) == (
        "A81002",
        "A81002",
    )
    assert item.resolution == "reroute"
    assert item.resolution_details["from"] == "A81001"
    assert item.resolution_details["to"] == "A81002"
    assert queued() == [(RESEND_TASK, (rejected.pk,))]
    rerouted = AuditEvent.objects.get(action="document.rerouted")
    assert (rerouted.data["from"], rerouted.data["to"]) == ("A81001", "A81002")
    assert rerouted.actor_label == "ada"
    assert last_change(item).history_change_reason == (
        "Rerouted to another practice: PDS shows Hillview"
    )
    assert rejected.history.first().history_change_reason.startswith("Rerouted")


def test_reroute_a_document_held_for_an_unknown_destination_sends_it_afresh(
    sending_organisation, clinician, django_capture_on_commit_callbacks
):
    document = in_state("held", sending_organisation)  # A81001 not in the directory
    item = open_item(document)
    assert item.bucket.key == "routing"
    OrganisationFactory(ods_code="A81005")

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_reroute(
            work_item=item,
            ods_code="A81005",
            actor=clinician,
            confirmation=confirmed(item, "A81005"),
        )

    document.refresh_from_db()
    assert (document.status, document.destination_ods_code) == (S.READY, "A81005")
    assert queued() == [(SEND_TASK, (document.pk,))]


@pytest.mark.parametrize(
    ("ods_code", "code"),
    [
        ("A81006", "inactive"),
        ("B99999", "unknown"),
        ("A81099", "no_profile"),
        ("A81001", "same_destination"),
        ("not a code", "invalid"),
    ],
)
def test_reroute_is_refused_unless_the_directory_allows_the_destination(
    rejected, clinician, ods_code, code
):
    with pytest.raises(RerouteRefused) as refused:
        work_item_resolve_reroute(
            work_item=open_item(rejected),
            ods_code=ods_code,
            actor=clinician,
            confirmation=confirmed(open_item(rejected), ods_code),
        )

    assert refused.value.code == code
    assert_untouched(rejected, S.REJECTED)
    assert rejected.destination_ods_code == "A81001"
    assert not AuditEvent.objects.filter(action="document.rerouted").exists()


def test_reroute_is_refused_when_the_new_practice_cannot_take_the_content(
    rejected, clinician
):
    DestinationProfile.objects.filter(endpoint_type="docman7").update(
        max_file_size_bytes=100
    )

    with pytest.raises(RerouteRefused) as refused:
        work_item_resolve_reroute(
            work_item=open_item(rejected),
            ods_code="A81002",
            actor=clinician,
            confirmation=confirmed(open_item(rejected), "A81002"),
        )

    assert refused.value.code == "too_large"
    assert_untouched(rejected, S.REJECTED)


def test_rerouting_needs_the_decide_role(sending_organisation, practices, operator):
    document = in_state("system_error", sending_organisation, "5000")

    with pytest.raises(WorkItemPermissionDenied):
        work_item_resolve_reroute(
            work_item=open_item(document),
            ods_code="A81002",
            actor=operator,
            confirmation=confirmed(open_item(document), "A81002"),
        )

    assert_untouched(document, S.SYSTEM_ERROR)


# Corrected version


def test_corrected_version_is_a_new_document_replacing_the_rejected_one(
    sending_organisation, practices, clinician, django_capture_on_commit_callbacks
):
    document = in_state("rejected", sending_organisation, "REJ06")
    item = open_item(document)
    corrected = pdf_bytes("Discharge summary, corrected")

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_corrected_version(
            work_item=item,
            actor=clinician,
            reason="Given names were wrong",
            content=corrected,
            declared_extension="pdf",
            changes={"patient_given_names": "Alexandra"},
        )

    document.refresh_from_db()
    item.refresh_from_db()
    replacement = Document.objects.get(replaces=document)
    assert document.status == S.REJECTION_RESOLVED
    assert replacement.status == S.SUBMITTED
    assert replacement.patient_given_names == "Alexandra"
    assert replacement.patient_family_name == document.patient_family_name
    assert replacement.destination_ods_code == document.destination_ods_code
    assert replacement.source_system == "casework"
    [version] = replacement.payload_versions.all()
    assert version.stage == PayloadStage.ORIGINAL
    assert version.sha256 == hashlib.sha256(corrected).hexdigest()
    assert item.resolution == "corrected_version"
    assert item.resolution_details == {
        "replacement": str(replacement.public_id),
        "changed_fields": ["patient_given_names"],
        "new_content": True,
    }
    assert queued() == sorted(
        [
            (PREPARE_TASK, (replacement.pk,)),
            (
                RESOLVE_TASK,
                (
                    document.pk,
                    f"Corrected version sent in docflow (work item {item.public_id}).",
                ),
            ),
        ]
    )
    submitted = AuditEvent.objects.get(action="document.correction_submitted")
    assert submitted.data["replaces"] == str(document.public_id)
    assert submitted.data["changed_fields"] == ["patient_given_names"]
    assert "Alexandra" not in str(submitted.data)
    closed = AuditEvent.objects.get(action="document.resolve_rejection")
    assert closed.data["replaced_by"] == str(replacement.public_id)
    assert last_change(item).history_user == clinician


def test_corrected_details_alone_keep_the_content(
    sending_organisation, practices, clinician
):
    document = in_state("held_after_send", sending_organisation, "DC01.43")
    item = open_item(document)
    assert item.bucket.key == "content"

    work_item_resolve_corrected_version(
        work_item=item, actor=clinician, changes={"description": "Clinic letter"}
    )

    document.refresh_from_db()
    replacement = Document.objects.get(replaces=document)
    assert document.status == S.CANCELLED  # it never reached a practice
    assert replacement.description == "Clinic letter"
    assert (
        replacement.payload_versions.get().sha256
        == document.payload_versions.order_by("-id").first().sha256
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"content": exe_bytes()}, "executable"),
        ({"content": javascript_pdf()}, "pdf_javascript"),
        ({"content": docm_bytes()}, "macro_enabled"),
        ({"content": b""}, "empty"),
        ({}, "nothing_changed"),
        ({"changes": {"nhs_number": "9990000019"}}, "correction_invalid"),
        ({"changes": {"sending_organisation": "RY2"}}, "unknown_field"),
    ],
)
def test_a_correction_intake_would_refuse_changes_nothing(
    rejected, clinician, kwargs, code
):
    with pytest.raises(WorkItemInvalid) as refused:
        work_item_resolve_corrected_version(
            work_item=open_item(rejected), actor=clinician, **kwargs
        )

    assert refused.value.code == code
    assert_untouched(rejected, S.REJECTED)
    assert not Document.objects.filter(replaces=rejected).exists()


def test_an_invalid_corrected_detail_says_which_field(rejected, clinician):
    with pytest.raises(WorkItemInvalid) as refused:
        work_item_resolve_corrected_version(
            work_item=open_item(rejected),
            actor=clinician,
            changes={"nhs_number": "9990000019"},
        )

    assert list(refused.value.errors) == ["nhs_number"]


def test_no_correction_while_the_outcome_is_unknown(
    sending_organisation, practices, supervisor
):
    document = in_state("outcome_unknown", sending_organisation, "TIMEOUT_AFTER_SEND")

    with pytest.raises(DocumentStateError):
        work_item_resolve_corrected_version(
            work_item=open_item(document), actor=supervisor, content=pdf_bytes()
        )

    assert_untouched(document, S.OUTCOME_UNKNOWN)
    assert not Document.objects.filter(replaces=document).exists()


# Sent by another route


def test_sent_by_another_route_records_channel_and_reference(
    rejected, clinician, django_capture_on_commit_callbacks
):
    item = open_item(rejected)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_other_route(
            work_item=item,
            channel="given_to_patient",
            reference="Handed over at clinic 12/03",
            actor=clinician,
            reason="No registered practice",
        )

    rejected.refresh_from_db()
    item.refresh_from_db()
    assert rejected.status == S.REJECTION_RESOLVED
    assert item.resolution == "other_route"
    assert item.resolution_details == {
        "channel": "given_to_patient",
        "reference": "Handed over at clinic 12/03",
    }
    assert queued() == [
        (
            RESOLVE_TASK,
            (
                rejected.pk,
                f"Sent by another route in docflow (work item {item.public_id}).",
            ),
        )
    ]
    [event] = resolved_events()
    assert event.data["details"]["channel"] == "given_to_patient"
    assert last_change(item).history_change_reason == (
        "Sent by another route: No registered practice"
    )


def test_another_route_for_a_held_document_cancels_it_without_telling_connect(
    sending_organisation, clinician, django_capture_on_commit_callbacks
):
    document = in_state("held", sending_organisation)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_other_route(
            work_item=open_item(document),
            channel="post",
            reference="Royal Mail AB123456789GB",
            actor=clinician,
        )

    document.refresh_from_db()
    assert document.status == S.CANCELLED
    assert queued() == []


@pytest.mark.parametrize(
    ("channel", "reference", "code"),
    [
        ("carrier_pigeon", "ref", "unknown_channel"),
        ("post", "   ", "reference_required"),
        ("post", "x" * 256, "reference_required"),
    ],
)
def test_another_route_needs_a_known_channel_and_a_reference(
    rejected, clinician, channel, reference, code
):
    with pytest.raises(WorkItemInvalid) as refused:
        work_item_resolve_other_route(
            work_item=open_item(rejected),
            channel=channel,
            reference=reference,
            actor=clinician,
        )

    assert refused.value.code == code
    assert_untouched(rejected, S.REJECTED)


# No further action


def test_no_further_action_resolves_the_rejection_here_and_at_connect(
    sending_organisation, practices, clinician, django_capture_on_commit_callbacks
):
    document = in_state("rejected", sending_organisation, "REJ07")
    item = open_item(document)

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_no_further_action(
            work_item=item, actor=clinician, reason="Death confirmed in PDS"
        )

    document.refresh_from_db()
    item.refresh_from_db()
    assert document.status == S.REJECTION_RESOLVED
    assert (item.resolution, item.resolution_reason) == (
        "no_further_action",
        "Death confirmed in PDS",
    )
    assert [task for task, _ in queued()] == [RESOLVE_TASK]
    assert last_change(item).history_change_reason == (
        "No further action: Death confirmed in PDS"
    )
    resolved = AuditEvent.objects.get(action="document.resolve_rejection")
    assert resolved.data["resolution"] == "no_further_action"


def test_no_further_action_needs_a_reason(rejected, clinician):
    with pytest.raises(WorkItemInvalid) as refused:
        work_item_resolve_no_further_action(
            work_item=open_item(rejected), actor=clinician, reason="  "
        )

    assert refused.value.code == "reason_required"
    assert_untouched(rejected, S.REJECTED)


def test_no_further_action_on_a_system_error_is_local_only(
    sending_organisation,
    practices,
    supervisor,
    django_capture_on_commit_callbacks,
):
    # Connect marks only rejections (4005) resolved.
    document = in_state("system_error", sending_organisation, "7000")

    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_no_further_action(
            work_item=open_item(document), actor=supervisor, reason="Sent by hand"
        )

    document.refresh_from_db()
    assert document.status == S.REJECTION_RESOLVED
    assert queued() == []


# Cancel


def test_cancelling_a_held_document_ends_the_item_cancelled(
    sending_organisation, clinician
):
    document = in_state("held", sending_organisation)
    item = open_item(document)

    work_item_cancel_document(
        work_item=item, actor=clinician, reason="Sent to the wrong trust"
    )

    document.refresh_from_db()
    item.refresh_from_db()
    assert document.status == S.CANCELLED
    assert document.status_reason == "Cancelled: Sent to the wrong trust"
    assert (item.status, item.resolution) == ("cancelled", "document_cancelled")
    change = last_change(item)
    assert (change.history_user, change.status) == (clinician, "cancelled")
    [event] = resolved_events()
    assert event.action == "work_item.cancelled"


def test_a_document_the_practice_has_cannot_be_cancelled(rejected, clinician):
    with pytest.raises(DocumentStateError) as refused:
        work_item_cancel_document(
            work_item=open_item(rejected), actor=clinician, reason="Withdraw"
        )

    assert refused.value.code == "document_rejected"
    assert_untouched(rejected, S.REJECTED)


def test_cancelling_needs_a_reason(sending_organisation, clinician):
    document = in_state("held", sending_organisation)

    with pytest.raises(WorkItemInvalid):
        work_item_cancel_document(
            work_item=open_item(document), actor=clinician, reason=""
        )

    assert_untouched(document, S.HELD)


# Permissions


@pytest.mark.parametrize(
    "who",
    ["nobody", "no_role", "other_organisation", "no_team", "ig_officer", "system"],
)
def test_acting_without_the_permission_is_refused(
    rejected, sending_organisation, operations_team, clinical_team, who
):
    actor = {
        "nobody": lambda: staff(None),
        "no_role": lambda: staff(
            None, organisations=[sending_organisation], teams=[clinical_team]
        ),
        "other_organisation": lambda: staff(
            CLINICAL_ADMIN, organisations=[SendingOrganisationFactory(ods_code="RY2")]
        ),
        "no_team": lambda: _clinician_without_team(sending_organisation),
        "ig_officer": lambda: staff(
            "IG officer", organisations=[sending_organisation], teams=[clinical_team]
        ),
        "system": lambda: None,
    }[who]()

    with pytest.raises(WorkItemPermissionDenied):
        work_item_resolve_no_further_action(
            work_item=open_item(rejected), actor=actor, reason="Not needed"
        )

    assert_untouched(rejected, S.REJECTED)


def _clinician_without_team(sending_organisation):
    # The role's group grant on the clinical team removed: this person has the role
    # and the organisation, but no team.
    remove_perm(
        "casework.work_team_items",
        Group.objects.get(name=CLINICAL_ADMIN),
        Team.objects.get(name="Clinical admin"),
    )
    return staff(CLINICAL_ADMIN, organisations=[sending_organisation])


def test_a_superuser_may_resolve_anything(rejected, django_capture_on_commit_callbacks):
    admin = UserFactory(is_superuser=True)

    work_item_resolve_no_further_action(
        work_item=open_item(rejected), actor=admin, reason="Duplicate of a letter"
    )

    rejected.refresh_from_db()
    assert rejected.status == S.REJECTION_RESOLVED


def test_an_operator_may_resend_but_not_decide(
    sending_organisation, practices, operator
):
    document = in_state("system_error", sending_organisation, "5000")
    item = open_item(document)

    for resolve in (
        lambda: work_item_resolve_no_further_action(
            work_item=item, actor=operator, reason="x"
        ),
        lambda: work_item_cancel_document(work_item=item, actor=operator, reason="x"),
        lambda: work_item_resolve_other_route(
            work_item=item, channel="post", reference="x", actor=operator
        ),
        lambda: work_item_resolve_corrected_version(
            work_item=item, actor=operator, content=pdf_bytes()
        ),
    ):
        with pytest.raises(WorkItemPermissionDenied):
            resolve()

    work_item_resolve_resend(work_item=item, actor=operator)
    item.refresh_from_db()
    assert item.resolution == "resend"
