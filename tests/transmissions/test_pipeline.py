"""Hand-offs between stages: what gets queued, when, and the sweep for lost work."""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from casework.models import WorkItem
from docflow.models import DocumentStatus, Organisation, PreparationWakeUp
from docflow.services import preparation_wake_up, preparation_wake_up_clear
from tests.factories import OrganisationFactory, submit_document
from transmissions.engine.claims import document_claim
from transmissions.engine.controls import outbound_pause
from transmissions.models import Transmission
from transmissions.pipeline.sweep import (
    document_prepare_for_sending,
    pipeline_dispatch_due,
)

S = DocumentStatus


def queued() -> list[tuple[str, tuple]]:
    return sorted((q.task["func"], tuple(q.task["args"])) for q in OrmQ.objects.all())


@pytest.fixture
def destination(db):
    return OrganisationFactory(ods_code="A81001", endpoint_type="docman10")


def test_intake_queues_preparation_once_the_document_is_stored(
    destination, sending_organisation, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        document = submit_document(sending_organisation=sending_organisation)

    assert queued() == [("transmissions.tasks.prepare_document", (document.pk,))]


def test_intake_queues_one_task_until_a_task_starts_looking(
    destination, sending_organisation, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first, *_others = (
            submit_document(sending_organisation=sending_organisation) for _ in range(3)
        )

    # The first document's task will find the other two: they queue nothing.
    assert queued() == [("transmissions.tasks.prepare_document", (first.pk,))]
    assert PreparationWakeUp.objects.get().pending

    preparation_wake_up_clear()  # that task starts looking
    fourth = submit_document(sending_organisation=sending_organisation)

    assert queued() == [
        ("transmissions.tasks.prepare_document", (first.pk,)),
        ("transmissions.tasks.prepare_document", (fourth.pk,)),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_task_starts_looking_only_once_intakes_that_counted_on_it_commit(
    destination,
):
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks across connections)")
    PreparationWakeUp.objects.update_or_create(pk=1, defaults={"pending": True})
    found_pending = threading.Event()
    commit = threading.Event()
    cleared = threading.Event()
    queued_by_intake: list[bool] = []

    def intake() -> None:
        try:
            with transaction.atomic():
                queued_by_intake.append(preparation_wake_up(document_id=1))
                found_pending.set()
                commit.wait(10)
        finally:
            connection.close()

    def task_starts_looking() -> None:
        try:
            preparation_wake_up_clear()
            cleared.set()
        finally:
            connection.close()

    writer = threading.Thread(target=intake)
    writer.start()
    assert found_pending.wait(10)
    looker = threading.Thread(target=task_starts_looking)
    looker.start()

    # The intake found a task pending and queued none: until it commits, the task
    # may not look, or it could miss the intake's document.
    assert not cleared.wait(0.5)
    commit.set()
    writer.join(10)
    assert cleared.wait(10)
    looker.join(10)
    assert queued_by_intake == [False]
    assert not PreparationWakeUp.objects.get(pk=1).pending
    assert OrmQ.objects.count() == 0


def test_intake_queues_nothing_when_switched_off(
    destination, sending_organisation, settings, django_capture_on_commit_callbacks
):
    settings.DOCFLOW_PREPARE_TASK = ""
    with django_capture_on_commit_callbacks(execute=True):
        submit_document(sending_organisation=sending_organisation)

    assert queued() == []


def test_prepared_document_is_queued_for_sending_after_commit(
    destination, sending_organisation, django_capture_on_commit_callbacks
):
    document = submit_document(sending_organisation=sending_organisation)
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        document_prepare_for_sending(document_id=document.pk)
        assert queued() == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()

    assert queued() == [("transmissions.tasks.send_document", (document.pk,))]


def test_held_preparation_opens_a_preflight_work_item_and_queues_nothing(
    db, sending_organisation, django_capture_on_commit_callbacks
):
    document = submit_document(
        sending_organisation=sending_organisation, destination_ods_code="B99999"
    )
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        prepared = document_prepare_for_sending(document_id=document.pk)

    assert prepared.document.status == S.HELD
    [item] = WorkItem.objects.filter(document=document)
    assert (item.category, item.reason_code, item.status) == (
        "preflight",
        "DEST_UNKNOWN",
        "open",
    )
    assert queued() == []


def test_preparing_twice_changes_nothing_the_second_time(
    destination, sending_organisation
):
    document = submit_document(sending_organisation=sending_organisation)
    document_prepare_for_sending(document_id=document.pk)

    again = document_prepare_for_sending(document_id=document.pk)

    assert again.sendable == []
    assert again.document.status == S.READY


def test_sweep_queues_lost_and_due_work_but_not_fresh_or_halted_work(
    destination, sending_organisation, django_capture_on_commit_callbacks
):
    other = OrganisationFactory(ods_code="A81002")
    lost = submit_document(sending_organisation=sending_organisation)
    ready = submit_document(sending_organisation=sending_organisation)
    document_prepare_for_sending(document_id=ready.pk)
    unknown = submit_document(sending_organisation=sending_organisation)
    document_prepare_for_sending(document_id=unknown.pk)
    document_claim(unknown.pk)
    from docflow.services import document_transition

    document_transition(document=unknown, transition="mark_outcome_unknown")
    backing_off = submit_document(
        sending_organisation=sending_organisation,
        destination_ods_code=other.ods_code,
    )
    document_prepare_for_sending(document_id=backing_off.pk)
    document_claim(backing_off.pk)
    document_transition(document=backing_off, transition="retry_later")
    Transmission.objects.filter(document=backing_off).update(
        next_attempt_at=timezone.now() + dt.timedelta(hours=3)
    )
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        fresh = pipeline_dispatch_due()
    assert (fresh.prepare, fresh.send, fresh.settle) == (0, 0, 1)

    OrmQ.objects.all().delete()
    with (
        time_machine.travel(timezone.now() + dt.timedelta(minutes=5)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        swept = pipeline_dispatch_due()

    assert queued() == sorted(
        [
            ("transmissions.tasks.prepare_document", (lost.pk,)),
            ("transmissions.tasks.send_document", (ready.pk,)),
            ("transmissions.tasks.settle_outcome_unknown", (unknown.pk,)),
        ]
    )
    assert (swept.prepare, swept.send, swept.settle) == (1, 1, 1)

    outbound_pause(reason="incident", actor=None)
    OrmQ.objects.all().delete()
    with (
        time_machine.travel(timezone.now() + dt.timedelta(minutes=5)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        halted = pipeline_dispatch_due()
    assert halted.send == 0
    assert Organisation.objects.count() == 2


def test_setup_schedules_is_idempotent(db):
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    Schedule.objects.filter(func="transmissions.tasks.track").update(minutes=99)
    call_command("setup_schedules", stdout=out)

    schedules = {s.func: s.minutes for s in Schedule.objects.all()}
    assert schedules == {
        "transmissions.tasks.track": 1,
        "transmissions.tasks.dispatch_due": 1,
        "transmissions.tasks.reconcile_sending": 1,
        "transmissions.tasks.reconcile_organisations": 60,
        "transmissions.tasks.mesh_poll_inboxes": 1,
        "transmissions.tasks.mesh_handshake": 24 * 60,
        "operations.tasks.watch": 1,
        "operations.tasks.roll_up_hourly_counts": 5,
        "operations.tasks.prune_task_failures": 60,
        "audit.tasks.audit_chain_verify_scheduled": 5,
        "audit.tasks.audit_seal_scheduled": 1,
        "governance.tasks.purge_payloads": 60,
        "casework.tasks.compact_work_item_counts": 5,
        "transmissions.tasks.mesh_settle_unanswered": 60,
    }
    assert Schedule.objects.count() == 14
    assert "up to date" in out.getvalue()
