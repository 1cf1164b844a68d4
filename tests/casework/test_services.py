"""The work item rule: a document needing attention has exactly one open item,
classified into a bucket with its team, due date and next steps."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from casework.classification import work_item_classify
from casework.models import (
    WorkItem,
    WorkItemBucket,
    WorkItemReason,
    WorkItemStatus,
)
from casework.services import (
    work_item_resolve_resend,
    work_item_sync_for_document,
)
from docflow.services import document_transition
from tests.casework.factories import TeamFactory, document_in, open_item
from tests.factories import submit_document
from transmissions.pipeline.sweep import pipeline_dispatch_due

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def move(document, *transitions, reason=""):
    for name in transitions:
        document = document_transition(
            document=document, transition=name, reason=reason
        )
    return document


def open_items(document):
    return list(
        WorkItem.objects.filter(
            document=document, status__in=[WorkItemStatus.OPEN, WorkItemStatus.ASSIGNED]
        )
    )


SENT = ["mark_prepared", "claim_for_sending"]
RECEIVED = [*SENT, "mark_received"]


CA, OPS = "Clinical admin", "Integration operations"
HELD_AFTER = [*SENT, "hold_after_send_attempt"]
UNDELIVERED = [*RECEIVED, "mark_delivered", "mark_undelivered"]


@pytest.mark.parametrize(
    ("path", "reason", "category", "bucket", "team", "hours"),
    [
        (["hold_before_send"], "DEST_UNKNOWN", "preflight", "routing", CA, 24),
        (HELD_AFTER, "DC01.09", "preflight", "content", CA, 48),
        (HELD_AFTER, "RETRIES_EXHAUSTED", "send_failed", "infrastructure", OPS, 4),
        (
            [*SENT, "mark_outcome_unknown"],
            "TIMEOUT_AFTER_SEND",
            "outcome_unknown",
            "infrastructure",
            OPS,
            4,
        ),
        ([*RECEIVED, "mark_rejected"], "REJ01", "rejection", "clinical", CA, 24),
        (
            [*RECEIVED, "mark_system_error"],
            "5000",
            "system_error",
            "infrastructure",
            OPS,
            4,
        ),
        (UNDELIVERED, "NDR", "undelivered", "delivery", CA, 72),
    ],
)
def test_attention_state_opens_one_classified_item_with_team_and_due_date(
    sending_organisation, path, reason, category, bucket, team, hours
):
    with time_machine.travel(NOW, tick=False):
        document = move(
            submit_document(sending_organisation=sending_organisation),
            *path,
            reason=reason,
        )
        item = work_item_sync_for_document(document=document)
    again = work_item_sync_for_document(document=document)

    assert [item] == open_items(document) == [again]
    assert (item.category, item.reason_code) == (category, reason)
    assert (item.bucket.key, item.team.name) == (bucket, team)
    assert item.opened_at == NOW
    assert item.due_at == NOW + dt.timedelta(hours=hours)
    assert item.suggested_actions and all(
        isinstance(step, str) for step in item.suggested_actions
    )
    opened = AuditEvent.objects.get(action="work_item.opened")
    assert (opened.data["bucket"], opened.data["team"]) == (bucket, team)
    [row] = item.history.all()
    assert (row.history_type, row.history_user) == ("+", None)
    assert row.history_change_reason == f"Document {document.status}: {reason}"
    # The sender is copied onto the item (and its history) for the queue's reads.
    assert item.sending_organisation == sending_organisation
    assert row.sending_organisation_id == sending_organisation.pk


@pytest.mark.parametrize(
    ("category", "code", "bucket", "clinical"),
    [
        # Routing
        ("preflight", "DC02", "routing", False),
        ("preflight", "DC03", "routing", False),
        ("preflight", "DEST_UNKNOWN", "routing", False),
        ("preflight", "DEST_INACTIVE", "routing", False),
        ("preflight", "DEST_NO_PROFILE", "routing", False),
        # Clinical workflow
        ("rejection", "REJ01", "clinical", True),
        ("rejection", "REJ02", "clinical", True),
        ("rejection", "REJ03", "clinical", True),
        ("rejection", "REJ06", "clinical", True),
        ("rejection", "REJ07", "clinical", True),
        # Content
        ("preflight", "CONVERSION_FAILED", "content", False),
        ("preflight", "TYPE_NOT_ALLOWED", "content", False),
        ("preflight", "TOO_LARGE", "content", False),
        ("preflight", "PDF_INVALID", "content", False),
        ("preflight", "SIM01", "content", False),
        ("rejection", "REJ04", "content", False),
        ("preflight", "DC01.01", "content", False),
        ("preflight", "DC01.43", "content", False),
        # Infrastructure
        ("rejection", "REJ05", "infrastructure", False),
        ("system_error", "5000", "infrastructure", False),
        ("system_error", "7000", "infrastructure", False),
        ("outcome_unknown", "TIMEOUT_AFTER_SEND", "infrastructure", False),
        ("outcome_unknown", "STUCK_SENDING", "infrastructure", False),
        ("send_failed", "RETRIES_EXHAUSTED", "infrastructure", False),
        ("preflight", "AUTH_FAILED", "infrastructure", False),
        ("preflight", "PAYLOAD_UNREADABLE", "infrastructure", False),
        # Delivery completion
        ("undelivered", "NEVER_ACKNOWLEDGED", "delivery", False),
        ("undelivered", "NDR", "delivery", False),
        ("undelivered", "EXPIRED", "delivery", False),
        # The engine's own refusal codes.
        ("preflight", "ConnectConflict", "infrastructure", False),
        # No code at all: the fallback for the kind of problem.
        ("outcome_unknown", "", "infrastructure", False),
        ("undelivered", "", "delivery", False),
    ],
)
def test_every_reason_code_lands_in_its_bucket(db, category, code, bucket, clinical):
    classification = work_item_classify(category=category, reason_code=code)

    assert classification.bucket.key == bucket
    assert classification.is_clinical is clinical
    assert classification.team == classification.bucket.default_team
    assert classification.title
    assert len(classification.suggested_actions) >= 2


def test_rej01_suggests_checking_the_practice_then_reroute_or_another_route(db):
    steps = work_item_classify(category="rejection", reason_code="REJ01")

    assert steps.title == "Patient no longer registered at this practice"
    assert "current registered practice" in steps.suggested_actions[0]
    assert steps.suggested_actions[1].startswith("Reroute")
    assert "by another route" in steps.suggested_actions[2]


def test_the_longest_matching_prefix_wins_over_a_shorter_one(db):
    content = WorkItemBucket.objects.get(key="content")
    WorkItemReason.objects.create(
        code="DC01.4",
        match_prefix=True,
        bucket=WorkItemBucket.objects.get(key="routing"),
        title="Description problems",
        suggested_actions=["Shorten it."],
    )

    assert work_item_classify(category="preflight", reason_code="DC01.43").title == (
        "Description problems"
    )
    assert work_item_classify(category="preflight", reason_code="DC01.09").bucket == (
        content
    )


def test_admin_edits_of_a_bucket_apply_to_new_items_not_to_open_ones(
    sending_organisation,
):
    first = document_in("held", sending_organisation=sending_organisation)
    before = open_item(first)
    routing = WorkItemBucket.objects.get(key="routing")
    night_team = TeamFactory(name="Night desk")
    routing.default_team = night_team
    routing.due_within_hours = 2
    routing.save()

    second = document_in("held", sending_organisation=sending_organisation)
    after = open_item(second)

    before.refresh_from_db()
    assert before.team.name == "Clinical admin"
    assert after.team == night_team
    assert after.due_at == after.opened_at + dt.timedelta(hours=2)


def test_without_reference_data_an_item_still_opens_needing_classification(
    sending_organisation,
):
    WorkItemReason.objects.all().delete()
    document = move(
        submit_document(sending_organisation=sending_organisation),
        "hold_before_send",
        reason="DEST_UNKNOWN",
    )

    item = work_item_sync_for_document(document=document)

    assert item.bucket.key == "needs_classifying"
    assert item.team == item.bucket.default_team
    assert item.status == WorkItemStatus.OPEN


def test_without_any_bucket_an_item_still_opens_unclassified(sending_organisation):
    WorkItemReason.objects.all().delete()
    WorkItemBucket.objects.all().delete()
    document = move(
        submit_document(sending_organisation=sending_organisation),
        "hold_before_send",
        reason="DEST_UNKNOWN",
    )

    item = work_item_sync_for_document(document=document)

    assert (item.bucket, item.team, item.due_at) == (None, None, None)
    assert item.status == WorkItemStatus.OPEN


def test_leaving_the_attention_state_closes_the_item_with_an_audit_event(
    sending_organisation,
):
    document = move(
        submit_document(sending_organisation=sending_organisation), "hold_before_send"
    )
    item = work_item_sync_for_document(document=document)

    document = move(document, "release")
    assert work_item_sync_for_document(document=document) is None

    item.refresh_from_db()
    assert item.status == WorkItemStatus.CLOSED
    assert item.resolution == "document_moved_on"
    assert item.resolution_reason == "Document moved to ready"
    assert item.closed_at is not None
    assert open_items(document) == []
    closed = AuditEvent.objects.get(action="work_item.closed")
    assert closed.data["category"] == "preflight"
    assert item.history.first().history_change_reason == "Document moved to ready"


def test_a_new_kind_of_problem_replaces_the_open_item(sending_organisation):
    document = move(
        submit_document(sending_organisation=sending_organisation),
        "mark_prepared",
        "claim_for_sending",
        "mark_outcome_unknown",
    )
    unknown = work_item_sync_for_document(document=document)

    document = move(document, "hold_after_send_attempt", reason="DC02")
    held = work_item_sync_for_document(document=document)

    unknown.refresh_from_db()
    assert unknown.status == WorkItemStatus.CLOSED
    assert open_items(document) == [held]
    assert (held.category, held.bucket.key) == ("preflight", "routing")


def test_database_refuses_a_second_open_item_for_one_document(sending_organisation):
    document = move(
        submit_document(sending_organisation=sending_organisation), "hold_before_send"
    )
    WorkItem.objects.create(
        document=document,
        sending_organisation=sending_organisation,
        category="preflight",
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        WorkItem.objects.create(
            document=document,
            sending_organisation=sending_organisation,
            category="preflight",
        )


def test_documents_needing_nobody_get_no_item(sending_organisation):
    document = submit_document(sending_organisation=sending_organisation)

    assert work_item_sync_for_document(document=document) is None
    assert not WorkItem.objects.exists()


def test_the_engine_never_resolves_a_clinical_rejection(
    sending_organisation, practices
):
    document = document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ01"
    )
    item = open_item(document)

    with time_machine.travel(timezone.now() + dt.timedelta(days=30)):
        pipeline_dispatch_due()
        for _ in range(3):
            work_item_sync_for_document(document=document)

    document.refresh_from_db()
    item.refresh_from_db()
    assert item.is_clinical
    assert (document.status, item.status) == ("rejected", WorkItemStatus.OPEN)
    assert not AuditEvent.objects.filter(
        action__in=["work_item.closed", "work_item.resolved"]
    ).exists()


def test_sync_leaves_a_persons_resolution_alone_and_opens_a_new_item_next_time(
    sending_organisation, practices, operator
):
    document = document_in(
        "rejected", sending_organisation=sending_organisation, reason="REJ05"
    )
    resolved = work_item_resolve_resend(
        work_item=open_item(document), actor=operator, reason="Practice asked"
    )
    document.refresh_from_db()

    assert work_item_sync_for_document(document=document) is None  # ready: nobody

    document = move(
        document, "claim_for_sending", "mark_received", "mark_rejected", reason="REJ05"
    )
    again = work_item_sync_for_document(document=document)
    resolved.refresh_from_db()
    assert resolved.status == WorkItemStatus.RESOLVED
    assert resolved.resolution == "resend"
    assert again != resolved
    assert open_items(document) == [again]
