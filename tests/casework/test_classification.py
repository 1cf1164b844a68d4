"""Every reason classified: the seeded codes and system reasons land in their bucket
with their action class, free text is matched by prefix, and an unknown reason
opens one "needs classifying" item and one low incident."""

from __future__ import annotations

import logging

import pytest

from audit.models import AuditEvent
from casework.classification import (
    UNRECOGNISED_TEXT,
    reason_code_from_answer,
    reason_normalise,
    work_item_classify,
)
from casework.models import (
    NEEDS_CLASSIFYING,
    WorkItem,
    WorkItemBucket,
    WorkItemReason,
)
from casework.services import work_item_sync_for_document
from docflow.services import document_transition
from operations.models import Incident, IncidentKind, IncidentSeverity
from tests.factories import submit_document

RETRACE, RESEND, REROUTE, OTHER, NFA = (
    "retrace",
    "resend",
    "reroute",
    "other_route",
    "no_further_action",
)
CA, OPS = "Clinical admin", "Integration operations"

# (code as it arrives, bucket, team, due within hours, action class, clinical)
SEEDED = [
    # Connect's user rejection codes
    ("REJ01", "clinical", CA, 24, RETRACE, True),
    ("REJ02", "clinical", CA, 24, RETRACE, True),
    ("REJ03", "clinical", CA, 24, NFA, True),
    ("REJ04", "content", CA, 48, RESEND, False),
    ("REJ05", "infrastructure", OPS, 4, RESEND, False),
    ("REJ06", "clinical", CA, 24, RETRACE, True),
    ("REJ07", "clinical", CA, 24, NFA, True),
    ("REJ08", "clinical", CA, 24, OTHER, True),
    ("CONNECT3", "infrastructure", OPS, 4, OTHER, False),
    # System reasons seen in real Connect traffic
    (
        "No Acknowledge received from MESH after 5 days",
        "delivery",
        CA,
        72,
        OTHER,
        False,
    ),
    (
        "No acknowledgement received from Mesh after 5 days",
        "delivery",
        CA,
        72,
        OTHER,
        False,
    ),
    ("No Acknowledge received from Emis", "delivery", CA, 72, OTHER, False),
    ("Not acknowledged by EMIS", "delivery", CA, 72, OTHER, False),
    ("Tif Conversion Failed. File size too big", "content", CA, 48, RESEND, False),
    ("No live SystmOne unit for ODS code", "routing", CA, 24, REROUTE, False),
    ("Recalled by Sender", "delivery", CA, 72, NFA, False),
    ("Failed to Retrieve File (7006)", "infrastructure", OPS, 4, RESEND, False),
    ("Failed to Retrieve File (7007)", "infrastructure", OPS, 4, RESEND, False),
    (
        "MESH acknowledgement not at correct HTTP status",
        "infrastructure",
        OPS,
        4,
        RESEND,
        False,
    ),
]


@pytest.mark.parametrize(
    ("code", "bucket", "team", "hours", "action_class", "clinical"), SEEDED
)
def test_every_seeded_reason_has_its_bucket_team_due_rule_and_action_class(
    db, code, bucket, team, hours, action_class, clinical
):
    classification = work_item_classify(category="rejection", reason_code=code)

    assert not classification.needs_classifying
    assert classification.bucket.key == bucket
    assert classification.team.name == team
    assert classification.bucket.due_within_hours == hours
    assert classification.action_class == action_class
    assert classification.is_clinical is clinical
    assert classification.title
    assert len(classification.suggested_actions) >= 2


def test_every_reason_row_says_what_kind_of_action_it_calls_for(db):
    # Only the rejection fallback (a practice's rejection with no code) leaves the
    # choice open: its steps say to read the reason first.
    without = WorkItemReason.objects.filter(action_class="")

    assert [(r.code, r.category) for r in without] == [("", "rejection")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Failed to Retrieve File (7006) at 12:03", "Failed to Retrieve File (7006)"),
        ("  failed to retrieve FILE   (7007).", "Failed to Retrieve File (7007)"),
        (
            "No live SystmOne unit for ODS code A81001",
            "No live SystmOne unit for ODS code",
        ),
        (
            "Tif Conversion Failed. File size too big!",
            "Tif Conversion Failed. File size too big",
        ),
        ("recalled by sender.", "Recalled by Sender"),
        ("REJ01 - Patient is no longer registered at this practice.", "REJ01"),
        ("REJ08: see notes", "REJ08"),
        ("rej05", "REJ05"),
    ],
)
def test_free_text_is_matched_by_prefix_after_normalising(db, text, expected):
    classification = work_item_classify(category="rejection", reason_code=text)
    row = WorkItemReason.objects.get(code=expected)

    assert not classification.needs_classifying
    assert classification.title == row.title
    assert reason_code_from_answer(code="", text=text) == expected


def test_an_exact_code_never_matches_a_longer_code_it_starts(db):
    assert reason_normalise(" REJ01 ,") == "rej01"

    longer = work_item_classify(category="rejection", reason_code="REJ010")

    assert longer.needs_classifying
    assert longer.bucket.key == NEEDS_CLASSIFYING


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "text", "recorded"),
    [
        ("REJ01", "Patient is no longer registered at this practice.", "REJ01"),
        (
            "",
            "Failed to Retrieve File (7006) at 12:03",
            "Failed to Retrieve File (7006)",
        ),
        ("No Acknowledge received from Emis.", "", "No Acknowledge received from Emis"),
        ("REJ42", "Something new", "REJ42"),
        ("", "Patient Jane Doe 943 476 5919 moved to Leeds", UNRECOGNISED_TEXT),
        ("", "", ""),
    ],
)
def test_the_recorded_code_is_connects_code_or_the_matched_reason_never_free_text(
    code, text, recorded
):
    assert reason_code_from_answer(code=code, text=text) == recorded


def _rejected(sending_organisation, code):
    document = submit_document(sending_organisation=sending_organisation)
    for name in (
        "mark_prepared",
        "claim_for_sending",
        "mark_received",
        "mark_rejected",
    ):
        document = document_transition(document=document, transition=name, reason=code)
    return work_item_sync_for_document(document=document)


def test_an_unknown_reason_opens_one_needs_classifying_item_and_one_low_incident(
    sending_organisation, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        item = _rejected(sending_organisation, "REJ42")
        again = work_item_sync_for_document(document=item.document)

    assert again == item
    [opened] = WorkItem.objects.filter(document=item.document)
    assert opened.bucket.key == NEEDS_CLASSIFYING
    assert opened.reason_code == "REJ42"
    assert opened.reason_title == "Reason not classified yet: REJ42"
    # Worked by the team its kind of problem goes to, and never closed by itself.
    assert opened.team.name == CA
    assert opened.is_clinical is True
    assert "classify" in opened.suggested_actions[0]
    assert opened.due_at is not None
    [incident] = Incident.objects.all()
    assert incident.kind == IncidentKind.REASON_NOT_CLASSIFIED
    assert incident.severity == IncidentSeverity.LOW
    assert incident.scope == "reason:REJ42"
    assert incident.details["last_work_item"] == str(item.public_id)
    event = AuditEvent.objects.get(action="work_item.opened")
    assert event.data["needs_classifying"] is True
    assert AuditEvent.objects.filter(action="incident.opened").count() == 1


def test_repeated_unknown_reasons_of_one_code_join_one_incident(sending_organisation):
    items = [_rejected(sending_organisation, "REJ42") for _ in range(3)]
    other = _rejected(sending_organisation, "REJ43")

    assert {i.bucket.key for i in [*items, other]} == {NEEDS_CLASSIFYING}
    incidents = {i.scope: i for i in Incident.objects.all()}
    assert set(incidents) == {"reason:REJ42", "reason:REJ43"}
    assert incidents["reason:REJ42"].occurrences == 3
    assert incidents["reason:REJ43"].occurrences == 1


def test_an_unknown_system_error_code_is_worked_by_operations_on_their_due_rule(
    sending_organisation,
):
    document = submit_document(sending_organisation=sending_organisation)
    for name in ("mark_prepared", "claim_for_sending", "mark_received"):
        document = document_transition(document=document, transition=name)
    document = document_transition(
        document=document, transition="mark_system_error", reason="4999"
    )

    item = work_item_sync_for_document(document=document)

    assert item.bucket.key == NEEDS_CLASSIFYING
    assert item.team.name == OPS
    assert item.is_clinical is False
    # The sooner of the two due rules: infrastructure's 4 hours.
    assert (item.due_at - item.opened_at).total_seconds() == 4 * 3600


def test_a_known_reason_raises_no_incident_and_no_code_takes_the_fallback(
    sending_organisation,
):
    known = _rejected(sending_organisation, "REJ08")
    blank = _rejected(sending_organisation, "")

    assert known.bucket.key == "clinical"
    assert blank.bucket.key == "clinical"
    assert blank.reason_title == "Rejected by the practice"
    assert not Incident.objects.exists()


def test_a_reason_classified_later_applies_to_new_items(sending_organisation):
    first = _rejected(sending_organisation, "REJ42")
    WorkItemReason.objects.create(
        code="REJ42",
        bucket=WorkItemBucket.objects.get(key="clinical"),
        title="Newly described",
        suggested_actions=["Do this.", "Then that."],
        action_class=OTHER,
    )

    second = _rejected(sending_organisation, "REJ42")

    assert second.bucket.key == "clinical"
    assert second.reason_title == "Newly described"
    first.refresh_from_db()
    assert first.bucket.key == NEEDS_CLASSIFYING  # what it was told stands
    assert Incident.objects.get().occurrences == 1


def test_unknown_free_text_is_kept_out_of_items_audit_and_logs(
    sending_organisation, caplog
):
    text = "Patient Jane Doe 943 476 5919 moved to Leeds"
    caplog.set_level(logging.DEBUG)
    code = reason_code_from_answer(code="", text=text)

    item = _rejected(sending_organisation, code)

    assert item.reason_code == UNRECOGNISED_TEXT
    assert "Read the practice's reason in Connect" in item.suggested_actions[0]
    assert Incident.objects.get().scope == f"reason:{UNRECOGNISED_TEXT}"
    everything = " ".join(
        [
            *(str(e.data) for e in AuditEvent.objects.all()),
            *(r.getMessage() for r in caplog.records),
            str(item.suggested_actions),
            item.reason_title,
        ]
    )
    assert "Jane" not in everything
    assert "943 476 5919" not in everything
