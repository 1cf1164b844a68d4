"""The isolated conversion step: batches hand HTML and images on without
converting them; a conversion holds its document once when it passes a limit or
loses referenced content; slots bound how many run at once; attempts bound how
often a conversion that never ends is tried."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from docflow.conversion.isolated import ConversionOutcome
from docflow.models import (
    ConversionJob,
    ConversionSlot,
    DestinationProfile,
    Document,
    DocumentStatus,
    PayloadStage,
)
from docflow.preparation import (
    HoldReason,
    conversion_claim,
    conversion_slot_release,
    conversions_waiting,
    document_convert,
    document_prepare,
    documents_prepare,
)
from docflow.preparation import converting as converting_module
from tests.factories import OrganisationFactory, submit_document
from tests.samples import HTML_LETTER, pdf_bytes

pytestmark = pytest.mark.django_db

S = DocumentStatus
LETTER_WITH_REMOTE_IMAGE = (
    b"<!DOCTYPE html><html><head><title>Letter</title></head><body>"
    b'<p>Dear Dr Example</p><img src="https://images.example.org/scan/123.png">'
    b"</body></html>"
)


def forced_pages(count: int) -> bytes:
    return (
        b"<!DOCTYPE html><html><head><style>p{break-after:page}</style></head><body>"
        + b"<p>x</p>" * count
        + b"</body></html>"
    )


@pytest.fixture
def destination():
    DestinationProfile.objects.update_or_create(
        endpoint_type="test_profile",
        defaults={
            "name": "Test profile",
            "max_file_size_bytes": 20 * 2**20,
            "allowed_media_types": ["application/pdf"],
            "conversion_max_pages": 5,
            # Room for an honest letter on a busy machine; pages are the limit here.
            "conversion_wall_seconds": 90,
            "conversion_cpu_seconds": 60,
        },
    )
    return OrganisationFactory(ods_code="A81001", endpoint_type="test_profile")


def hold_event(document) -> AuditEvent:
    return AuditEvent.objects.get(
        target_id=str(document.public_id), action="document.hold_before_send"
    )


def never_converted(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("converted inside a batch")

    monkeypatch.setattr(converting_module, "conversion_run_isolated", refuse)


def test_a_batch_hands_html_to_the_conversion_step_and_prepares_the_pdfs(
    destination, monkeypatch
):
    never_converted(monkeypatch)
    pdfs = [submit_document(content=pdf_bytes()) for _ in range(2)]
    html = submit_document(content=HTML_LETTER, declared_extension="html")

    batch = documents_prepare(first_id=pdfs[0].pk, limit=10)

    assert batch.converting == [html.pk]
    assert {p.document.pk: p.document.status for p in batch.prepared} == {
        pdfs[0].pk: S.READY,
        pdfs[1].pk: S.READY,
    }
    html.refresh_from_db()
    assert html.status == S.SUBMITTED
    assert ConversionJob.objects.get(document=html).attempts == 0
    assert AuditEvent.objects.filter(
        target_id=str(html.public_id), action="document.conversion_queued"
    ).exists()
    # The next batch leaves it to the conversion step.
    assert documents_prepare(limit=10).prepared == []


def test_a_conversion_past_its_page_limit_is_held_once_naming_the_limit(destination):
    document = submit_document(content=forced_pages(40), declared_extension="html")

    prepared = document_prepare(document_id=document.pk)

    assert prepared.document.status == S.HELD
    assert prepared.document.status_reason == HoldReason.CONVERSION_LIMIT
    event = hold_event(document)
    assert (event.data["detail"], event.data["limit"]) == ("pages", "pages")
    assert event.data["limits"]["max_pages"] == 5
    assert not ConversionJob.objects.filter(document=document).exists()
    assert not ConversionSlot.objects.filter(job__isnull=False).exists()
    # Held is final for the step: nothing converts it again by itself.
    assert document_convert(document_id=document.pk) is None


def test_a_letter_that_lost_an_external_image_is_held_with_the_loss_recorded(
    destination,
):
    document = submit_document(
        content=LETTER_WITH_REMOTE_IMAGE, declared_extension="html"
    )

    prepared = document_prepare(document_id=document.pk)

    assert prepared.document.status_reason == HoldReason.CONTENT_LOST
    converted = document.payload_versions.get(stage=PayloadStage.CONVERTED)
    lost = [
        {"kind": "image", "scheme": "https", "host": "images.example.org", "count": 1}
    ]
    assert converted.refused_resources == lost
    assert hold_event(document).data["refused_resources"] == lost
    assert "123.png" not in str(hold_event(document).data)


def test_a_profile_may_send_a_letter_with_its_loss_recorded(destination):
    DestinationProfile.objects.filter(endpoint_type="test_profile").update(
        send_with_lost_content=True
    )
    document = submit_document(
        content=LETTER_WITH_REMOTE_IMAGE, declared_extension="html"
    )

    prepared = document_prepare(document_id=document.pk)

    assert prepared.document.status == S.READY
    event = AuditEvent.objects.get(
        target_id=str(document.public_id), action="document.mark_prepared"
    )
    assert event.data["refused_resources"][0]["host"] == "images.example.org"
    assert event.data["reason"] == "converted to PDF, external content refused"


def test_with_every_slot_busy_a_conversion_waits_without_being_claimed(
    destination, settings
):
    settings.DOCFLOW_CONVERSION_SLOTS = 1
    first, second = (
        submit_document(content=HTML_LETTER, declared_extension="html")
        for _ in range(2)
    )
    documents_prepare(limit=10)

    claim = conversion_claim(document_id=first.pk)

    assert claim is not None
    assert conversion_claim(document_id=second.pk) is None
    assert conversions_waiting(limit=5) == [second.pk]
    conversion_slot_release(claim=claim)
    assert conversion_claim(document_id=second.pk) is not None


def test_a_conversion_whose_worker_died_is_claimed_again_once_its_lease_runs_out(
    destination, settings
):
    settings.DOCFLOW_CONVERSION_SLOTS = 1
    document = submit_document(content=HTML_LETTER, declared_extension="html")
    documents_prepare(limit=10)
    dead = conversion_claim(document_id=document.pk)  # its worker never comes back

    assert conversion_claim(document_id=document.pk) is None
    later = timezone.now() + datetime.timedelta(
        seconds=settings.DOCFLOW_CONVERSION_LEASE_SECONDS + 1
    )
    with time_machine.travel(later, tick=False):
        assert conversions_waiting(limit=5) == [document.pk]
        again = conversion_claim(document_id=document.pk)

    assert again is not None
    assert (dead.attempts, again.attempts) == (1, 2)
    assert again.slot_id == dead.slot_id


def test_past_its_last_attempt_a_conversion_is_held_without_running_again(
    destination, settings, monkeypatch
):
    settings.DOCFLOW_CONVERSION_MAX_ATTEMPTS = 2
    document = submit_document(content=HTML_LETTER, declared_extension="html")
    documents_prepare(limit=10)
    ConversionJob.objects.filter(document=document).update(attempts=2)
    never_converted(monkeypatch)

    prepared = document_convert(document_id=document.pk)

    assert prepared.document.status_reason == HoldReason.CONVERSION_LIMIT
    assert hold_event(document).data["limit"] == "attempts"


def test_a_child_that_dies_is_tried_again_then_held(destination, settings, monkeypatch):
    settings.DOCFLOW_CONVERSION_MAX_ATTEMPTS = 2
    monkeypatch.setattr(
        converting_module,
        "conversion_run_isolated",
        lambda *args, **kwargs: ConversionOutcome(crashed="SIGSEGV"),
    )
    document = submit_document(content=HTML_LETTER, declared_extension="html")

    first = document_prepare(document_id=document.pk)

    assert (first.document.status, first.converting) == (S.SUBMITTED, True)
    assert ConversionJob.objects.get(document=document).lease_until is None
    assert AuditEvent.objects.filter(
        target_id=str(document.public_id), action="document.conversion_interrupted"
    ).exists()

    second = document_convert(document_id=document.pk)

    assert second.document.status_reason == HoldReason.CONVERSION_LIMIT
    assert hold_event(document).data["child_ended"] == "SIGSEGV"
    assert not ConversionJob.objects.filter(document=document).exists()


def test_the_conversion_limits_are_edited_in_the_admin(admin_client, destination):
    profile = DestinationProfile.objects.get(endpoint_type="test_profile")
    url = f"/admin/docflow/destinationprofile/{profile.pk}/change/"

    page = admin_client.get(url).content.decode()

    for name in (
        "conversion_wall_seconds",
        "conversion_cpu_seconds",
        "conversion_memory_mib",
        "conversion_max_pages",
        "send_with_lost_content",
    ):
        assert f'name="{name}"' in page


def test_a_job_left_by_a_cancelled_document_goes_at_its_next_claim(destination):
    document = submit_document(content=HTML_LETTER, declared_extension="html")
    documents_prepare(limit=10)
    Document.objects.filter(pk=document.pk).update(status=S.CANCELLED)

    assert conversion_claim(document_id=document.pk) is None
    assert not ConversionJob.objects.filter(document=document).exists()
