"""Acceptance 4: each data class is purged exactly when due, never while a person
still needs the document, and every purge is audited."""

from __future__ import annotations

import datetime
import io

import pytest
import time_machine
from django.core.management import call_command
from django.test import TestCase

from audit.models import AccessLog, AuditEvent
from audit.services import access_log_record
from casework.models import WorkItem
from casework.services import work_item_sync_for_document
from docflow.models import (
    DestinationProfile,
    Document,
    DocumentStatus,
    PayloadStage,
    PayloadVersion,
)
from docflow.preparation import document_prepare
from docflow.services import document_cancel, document_transition
from governance.retention import RetentionPolicy, payload_purge_due
from tests.factories import OrganisationFactory, submit_document
from tests.samples import HTML_LETTER, pdf_bytes

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.UTC)
SECOND = datetime.timedelta(seconds=1)
DAY = datetime.timedelta(days=1)
INTERMEDIATE_DAYS = 30
FINISHED_DAYS = 90


@pytest.fixture(autouse=True)
def policy(settings):
    settings.DOCFLOW_RETENTION_INTERMEDIATE_DAYS = INTERMEDIATE_DAYS
    settings.DOCFLOW_RETENTION_FINISHED_DAYS = FINISHED_DAYS
    settings.DOCFLOW_RETENTION_AUDIT_DAYS = 2922
    settings.DOCFLOW_RETENTION_ACCESS_LOG_DAYS = 2922


@pytest.fixture
def destination():
    return OrganisationFactory(ods_code="A81001")


def at(moment: datetime.datetime):
    return time_machine.travel(moment, tick=False)


def purge_at(moment: datetime.datetime):
    # Blobs are deleted after commit: run those callbacks as a real commit would.
    with at(moment), TestCase.captureOnCommitCallbacks(execute=True):
        return payload_purge_due()


def blob_exists(payload_dir, version: PayloadVersion) -> bool:
    return (payload_dir / version.storage_name).exists()


def converted_letter() -> tuple[Document, PayloadVersion, PayloadVersion]:
    """An HTML letter prepared at T0: the original is superseded by its PDF."""
    with at(T0):
        document = submit_document(content=HTML_LETTER, declared_extension="html")
        assert document_prepare(document_id=document.pk).document.status == (
            DocumentStatus.READY
        )
    original, converted = PayloadVersion.objects.filter(document=document).order_by(
        "pk"
    )
    assert (original.stage, converted.stage) == (
        PayloadStage.ORIGINAL,
        PayloadStage.CONVERTED,
    )
    return document, original, converted


def move(document: Document, *transitions: str) -> Document:
    for name in transitions:
        document = document_transition(document=document, transition=name)
    return document


def run_events():
    return list(AuditEvent.objects.filter(action="payload.retention_purge"))


def test_policy_reads_settings_with_defaults(settings):
    del settings.DOCFLOW_RETENTION_INTERMEDIATE_DAYS
    settings.DOCFLOW_RETENTION_FINISHED_DAYS = 7

    policy = RetentionPolicy.from_settings()

    assert policy.intermediate == 30 * DAY
    assert policy.finished == 7 * DAY
    assert policy.audit == policy.access_log == 2922 * DAY


def test_superseded_original_is_purged_exactly_when_due_and_audited(
    destination, filesystem_payload_store
):
    document, original, converted = converted_letter()
    due = T0 + INTERMEDIATE_DAYS * DAY

    early = purge_at(due - SECOND)

    assert sum(early.purged.values()) == 0
    original.refresh_from_db()
    assert original.purged_at is None and blob_exists(
        filesystem_payload_store, original
    )

    report = purge_at(due)

    assert report.purged == {"intermediate": 1}
    original.refresh_from_db()
    converted.refresh_from_db()
    assert original.purged_at == due
    assert not blob_exists(filesystem_payload_store, original)
    assert converted.purged_at is None and blob_exists(
        filesystem_payload_store, converted
    )
    # The row stays as the proof of what was received.
    assert original.sha256 and original.size_bytes
    [early_run, run] = run_events()
    assert early_run.data["purged"] == {"intermediate": 0, "finished": 0}
    assert run.data["purged"] == {"intermediate": 1, "finished": 0}
    assert run.data["bytes_purged"] == original.size_bytes
    [per_document] = AuditEvent.objects.filter(
        action="document.payloads_purged", target_id=str(document.public_id)
    )
    assert per_document.data["versions"] == [
        {
            "payload_version": str(original.public_id),
            "stage": PayloadStage.ORIGINAL,
            "data_class": "intermediate",
            "sha256": original.sha256,
            "size_bytes": original.size_bytes,
        }
    ]


def test_the_scheduled_task_purges_what_is_due(destination, filesystem_payload_store):
    from governance.tasks import purge_payloads

    _, original, _ = converted_letter()

    with (
        at(T0 + INTERMEDIATE_DAYS * DAY),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        summary = purge_payloads()

    assert summary == "purged {'intermediate': 1}"
    original.refresh_from_db()
    assert original.purged_at is not None
    assert not blob_exists(filesystem_payload_store, original)


@pytest.mark.parametrize(
    "finish",
    [
        pytest.param(
            lambda d: document_cancel(document=d, reason="x", actor=None),
            id="cancelled",
        ),
        pytest.param(
            lambda d: move(
                d,
                "mark_prepared",
                "claim_for_sending",
                "mark_received",
                "mark_accepted",
            ),
            id="accepted",
        ),
    ],
)
def test_finished_document_payload_is_purged_exactly_when_due(
    filesystem_payload_store, finish
):
    with at(T0):
        document = submit_document(content=pdf_bytes())
    finished_at = T0 + 3 * DAY
    with at(finished_at):
        finish(document)
    [version] = PayloadVersion.objects.filter(document=document)
    due = finished_at + FINISHED_DAYS * DAY

    assert sum(purge_at(due - SECOND).purged.values()) == 0
    assert blob_exists(filesystem_payload_store, version)

    report = purge_at(due)

    assert report.purged == {"finished": 1}
    version.refresh_from_db()
    assert version.purged_at == due
    assert not blob_exists(filesystem_payload_store, version)
    assert run_events()[-1].data["purged"] == {"intermediate": 0, "finished": 1}


def test_a_document_on_its_way_keeps_its_current_payload_indefinitely(
    filesystem_payload_store,
):
    with at(T0):
        document = move(submit_document(), "mark_prepared", "claim_for_sending")
        document = move(document, "mark_received", "mark_delivered")

    report = purge_at(T0 + 3650 * DAY)

    assert sum(report.purged.values()) == 0
    assert PayloadVersion.objects.get(document=document).purged_at is None


def test_delivered_is_final_only_where_the_profile_never_reports_accepted(
    filesystem_payload_store,
):
    DestinationProfile.objects.update_or_create(
        endpoint_type="never_accepts",
        defaults={
            "name": "Delivered is final",
            "max_file_size_bytes": 10**7,
            "allowed_media_types": ["application/pdf"],
            "reports_accepted": False,
        },
    )
    final_destination = OrganisationFactory(
        ods_code="B82001", endpoint_type="never_accepts"
    )
    with at(T0):
        delivered = move(
            submit_document(destination_ods_code="B82001"),
            "mark_prepared",
            "claim_for_sending",
            "mark_received",
            "mark_delivered",
        )
    Document.objects.filter(pk=delivered.pk).update(destination=final_destination)

    assert sum(purge_at(T0 + FINISHED_DAYS * DAY - SECOND).purged.values()) == 0
    assert purge_at(T0 + FINISHED_DAYS * DAY).purged == {"finished": 1}


def test_payloads_are_never_purged_while_a_work_item_is_open_and_are_once_closed(
    destination, filesystem_payload_store
):
    document, original, converted = converted_letter()
    with at(T0 + DAY):
        document = move(document, "hold_before_send")
        item = work_item_sync_for_document(document=document)
    assert item is not None and item.status == "open"

    years_later = T0 + 5 * 365 * DAY
    report = purge_at(years_later)

    assert sum(report.purged.values()) == 0
    assert report.skipped_open_work == 1
    assert run_events()[-1].data["skipped_open_work"] == 1
    assert not PayloadVersion.objects.filter(purged_at__isnull=False).exists()
    assert blob_exists(filesystem_payload_store, original)

    with at(years_later):
        document = document_cancel(document=document, reason="withdrawn", actor=None)
        work_item_sync_for_document(document=document)
    assert not WorkItem.objects.filter(
        document=document, status__in=["open", "assigned"]
    ).exists()

    # The superseded original's clock ran out long ago: it goes now.
    assert purge_at(years_later).purged == {"intermediate": 1}
    # The final payload waits for the finished period from cancellation.
    due = years_later + FINISHED_DAYS * DAY
    assert sum(purge_at(due - SECOND).purged.values()) == 0
    assert purge_at(due).purged == {"finished": 1}
    converted.refresh_from_db()
    assert converted.purged_at == due
    assert not blob_exists(filesystem_payload_store, converted)


def test_a_version_with_retain_until_is_kept_until_that_moment(
    filesystem_payload_store,
):
    with at(T0):
        document = document_cancel(
            document=submit_document(), reason="withdrawn", actor=None
        )
    hold_until = T0 + 400 * DAY
    PayloadVersion.objects.filter(document=document).update(retain_until=hold_until)

    assert sum(purge_at(T0 + FINISHED_DAYS * DAY).purged.values()) == 0
    assert sum(purge_at(hold_until - SECOND).purged.values()) == 0
    assert purge_at(hold_until).purged == {"finished": 1}


def test_a_second_run_purges_nothing_more(destination, filesystem_payload_store):
    converted_letter()
    due = T0 + INTERMEDIATE_DAYS * DAY

    assert purge_at(due).purged == {"intermediate": 1}
    assert sum(purge_at(due + DAY).purged.values()) == 0
    assert AuditEvent.objects.filter(action="document.payloads_purged").count() == 1
    assert len(run_events()) == 2


def test_split_parent_is_purged_once_every_part_is_finished(filesystem_payload_store):
    with at(T0):
        parent = move(submit_document(), "mark_prepared")
        parts = [submit_document(content=pdf_bytes(f"part {n}")) for n in (1, 2)]
    Document.objects.filter(pk__in=[p.pk for p in parts]).update(parent=parent)
    with at(T0 + DAY):
        document_cancel(document=parts[0], reason="withdrawn", actor=None)
    late = T0 + 10 * DAY
    assert purge_at(late + FINISHED_DAYS * DAY).purged == {"finished": 1}
    parent_version = PayloadVersion.objects.get(document=parent)
    assert parent_version.purged_at is None

    with at(late):
        document_cancel(document=parts[1], reason="withdrawn", actor=None)

    assert sum(purge_at(late + FINISHED_DAYS * DAY - SECOND).purged.values()) == 0
    assert purge_at(late + FINISHED_DAYS * DAY).purged == {"finished": 2}
    parent_version.refresh_from_db()
    assert parent_version.purged_at == late + FINISHED_DAYS * DAY


def test_audit_and_access_logs_are_kept_and_counted_past_retention(
    settings, filesystem_payload_store
):
    settings.DOCFLOW_RETENTION_AUDIT_DAYS = 10
    settings.DOCFLOW_RETENTION_ACCESS_LOG_DAYS = 20
    with at(T0):
        document = submit_document()
        access_log_record(
            actor=None,
            channel="admin",
            action="view",
            target_type="document",
            target_id=str(document.public_id),
            reason="investigation",
        )
    events_before = AuditEvent.objects.count()

    report = purge_at(T0 + 15 * DAY)

    assert report.audit_events_past_retention == events_before
    assert report.access_logs_past_retention == 0
    assert AccessLog.objects.count() == 1
    assert AuditEvent.objects.count() == events_before + 1  # the run's own event
    assert run_events()[-1].data["kept"] == {
        "audit_events_past_retention": events_before,
        "access_logs_past_retention": 0,
    }
    assert purge_at(T0 + 21 * DAY).access_logs_past_retention == 1


def test_dry_run_command_counts_and_changes_nothing(
    destination, filesystem_payload_store
):
    converted_letter()
    out = io.StringIO()
    with at(T0 + INTERMEDIATE_DAYS * DAY):
        call_command("purge_payloads", "--dry-run", "--no-progress", stdout=out)

    assert "due: 1 intermediate, 0 finished" in out.getvalue()
    assert not PayloadVersion.objects.filter(purged_at__isnull=False).exists()
    assert run_events() == []

    out = io.StringIO()
    with at(T0 + INTERMEDIATE_DAYS * DAY):
        call_command("purge_payloads", "--no-progress", stdout=out)
    assert "purged: 1 intermediate, 0 finished" in out.getvalue()
    assert len(run_events()) == 1


def test_purge_is_scheduled_hourly():
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=io.StringIO())

    schedule = Schedule.objects.get(name="docflow: purge payloads past retention")
    assert schedule.func == "governance.tasks.purge_payloads"
    assert schedule.minutes == 60


def test_purge_works_through_bounded_windows_of_documents_reporting_progress(
    settings, destination, _payloads_in_tmp
):
    settings.DOCFLOW_RETENTION_WINDOW = 2
    documents = []
    with at(T0):
        for _ in range(5):
            document = submit_document(content=pdf_bytes())
            document_cancel(document=document, reason="test", actor=None)
            documents.append(document)
    windows = []

    with at(T0 + (FINISHED_DAYS + 1) * DAY):
        report = payload_purge_due(
            on_window=lambda done, total: windows.append((done, total))
        )

    assert report.purged == {"finished": 5}
    assert report.documents == 5
    ids = [d.pk for d in documents]
    span = max(ids) - min(ids) + 1
    # One look-up and purge per window of two ids, progress after each.
    assert len(windows) == -(-span // 2)
    assert windows[-1] == (span, span)
    assert [done for done, _ in windows] == sorted(done for done, _ in windows)
    assert len(run_events()) == 1
