"""The engine's conversion step: HTML leaves the PDF batch, is converted on its
own, and then either goes out or is held once with one work item."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from casework.models import WorkItem, WorkItemStatus
from docflow.models import ConversionJob, DestinationProfile, DocumentStatus
from docflow.preparation import conversion_claim
from tests.factories import submit_document
from tests.samples import pdf_bytes
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    simulator_stats,
)
from transmissions.pipeline.clock import clock_round
from transmissions.pipeline.converting import document_convert_and_send
from transmissions.pipeline.sweep import documents_prepare_and_send

pytestmark = pytest.mark.django_db

S = DocumentStatus
CONVERT = "transmissions.tasks.convert_document"


def forced_pages(count: int) -> bytes:
    return (
        b"<!DOCTYPE html><html><head><style>p{break-after:page}</style></head><body>"
        + b"<p>x</p>" * count
        + b"</body></html>"
    )


LETTER = (
    b"<!DOCTYPE html><html><head><title>Letter</title></head>"
    b"<body><p>Dear Dr Example</p></body></html>"
)


@pytest.fixture(autouse=True)
def _room_to_convert(db):
    """Not a test of conversion limits: a machine busy with other work must not
    push an honest letter past the seeded profiles' 20 s."""
    DestinationProfile.objects.update(
        conversion_wall_seconds=90, conversion_cpu_seconds=60
    )


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation, reference_data):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    DestinationProfile.objects.filter(endpoint_type="docman10").update(
        conversion_max_pages=5, conversion_wall_seconds=90, conversion_cpu_seconds=60
    )
    return simulator


def queued(func: str) -> list[int]:
    return sorted(
        row.task["args"][0] for row in OrmQ.objects.all() if row.task["func"] == func
    )


def submit(sending_organisation, content: bytes, extension: str):
    return submit_document(
        sending_organisation=sending_organisation,
        destination_ods_code="A81001",
        content=content,
        declared_extension=extension,
    )


def test_the_pdf_batch_sends_its_pdfs_and_queues_one_conversion_task_per_html(
    connected, sending_organisation
):
    bomb = submit(sending_organisation, forced_pages(40), "html")
    pdf = submit(sending_organisation, pdf_bytes(), "pdf")

    done = documents_prepare_and_send(document_id=bomb.pk)

    assert done.prepared == 1
    pdf.refresh_from_db()
    bomb.refresh_from_db()
    assert (pdf.status, bomb.status) == (S.RECEIVED, S.SUBMITTED)
    assert queued(CONVERT) == [bomb.pk]
    assert ConversionJob.objects.filter(document=bomb).exists()


def test_a_bomb_is_held_once_with_one_content_work_item(
    connected, sending_organisation
):
    bomb = submit(sending_organisation, forced_pages(40), "html")
    documents_prepare_and_send(document_id=bomb.pk)

    result = document_convert_and_send(document_id=bomb.pk)
    again = document_convert_and_send(document_id=bomb.pk)

    assert (result.outcome, again.outcome) == (S.HELD, "waiting")
    bomb.refresh_from_db()
    assert bomb.status_reason == "CONVERSION_LIMIT"
    [item] = WorkItem.objects.filter(document=bomb)
    assert item.status == WorkItemStatus.OPEN
    assert (item.reason_code, item.bucket.key) == ("CONVERSION_LIMIT", "content")
    assert item.suggested_actions
    assert simulator_stats(connected)["documents"] == 0


def test_a_converted_letter_is_sent_by_the_conversion_step(
    connected, sending_organisation
):
    letter = submit(sending_organisation, LETTER, "html")
    documents_prepare_and_send(document_id=letter.pk)

    result = document_convert_and_send(document_id=letter.pk)

    assert result.outcome == S.READY
    assert [sent.outcome for sent in result.sent] == ["posted"]
    letter.refresh_from_db()
    assert letter.status == S.RECEIVED
    assert not WorkItem.objects.filter(document=letter).exists()
    assert simulator_stats(connected)["documents"] == 1


def test_a_sweep_task_for_a_document_waiting_for_conversion_queues_it_again(
    connected, sending_organisation
):
    letter = submit(sending_organisation, LETTER, "html")
    documents_prepare_and_send(document_id=letter.pk)
    OrmQ.objects.all().delete()  # the conversion task was lost

    documents_prepare_and_send(document_id=letter.pk)

    assert queued(CONVERT) == [letter.pk]


def test_the_clock_queues_a_waiting_conversion_once_while_a_slot_is_free(
    connected, sending_organisation, settings
):
    settings.DOCFLOW_CLOCK_REQUEUE_SECONDS = 30
    letter = submit(sending_organisation, LETTER, "html")
    documents_prepare_and_send(document_id=letter.pk)
    OrmQ.objects.all().delete()  # the task a full slot turned away is gone
    memory: dict = {}
    now = timezone.now()

    first = clock_round(now=now, conversions=memory)
    second = clock_round(now=now + timedelta(seconds=1), conversions=memory)

    assert (first.conversions, second.conversions) == (1, 0)
    assert queued(CONVERT) == [letter.pk]
    third = clock_round(now=now + timedelta(seconds=31), conversions=memory)
    assert third.conversions == 1  # its task was lost too: queued again


def test_the_clock_queues_no_conversion_while_every_slot_is_busy(
    connected, sending_organisation, settings
):
    settings.DOCFLOW_CONVERSION_SLOTS = 1
    busy = submit(sending_organisation, LETTER, "html")
    waiting = submit(sending_organisation, LETTER + b" ", "html")
    documents_prepare_and_send(document_id=busy.pk)
    assert conversion_claim(document_id=busy.pk) is not None  # holds the one slot
    OrmQ.objects.all().delete()

    assert clock_round(conversions={}).conversions == 0
    assert queued(CONVERT) == []
    assert ConversionJob.objects.filter(document=waiting).exists()
