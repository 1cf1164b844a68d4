"""Content conversion refused is shown where people look: the work item page's
timeline and the IG timeline, by kind, scheme and host, never the address."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from casework.models import WorkItem
from docflow.models import DestinationProfile
from governance.ig import ig_document_timeline
from tests.factories import submit_document
from transmissions.pipeline.sweep import document_prepare_for_sending

pytestmark = pytest.mark.django_db

LETTER = (
    b"<!DOCTYPE html><html><head><title>Letter</title>"
    b'<link rel="stylesheet" href="https://styles.example.org/trust/letter.css">'
    b'</head><body><p>Dear Dr Example</p><img src="http://img.example.com/a/1.png">'
    b'<img src="http://img.example.com/a/2.png"></body></html>'
)


@pytest.fixture(autouse=True)
def _room_to_convert(db):
    """Not a test of conversion limits: a machine busy with other work must not
    push an honest letter past the seeded profiles' 20 s."""
    DestinationProfile.objects.update(
        conversion_wall_seconds=90, conversion_cpu_seconds=60
    )


@pytest.fixture
def held(sending_organisation, practices):
    document = submit_document(
        sending_organisation=sending_organisation,
        destination_ods_code="A81001",
        content=LETTER,
        declared_extension="html",
    )
    document_prepare_for_sending(document_id=document.pk, queue_sends=False)
    document.refresh_from_db()
    return document


def test_a_letter_that_lost_content_has_one_content_work_item_saying_what(held):
    [item] = WorkItem.objects.filter(document=held)

    assert (held.status, item.reason_code) == ("held", "CONTENT_LOST"), (
        held.history.first().status_reason,
        list(held.payload_versions.values_list("stage", flat=True)),
        [e.data for e in AuditEvent.objects.filter(target_id=str(held.public_id))],
    )
    assert item.bucket.key == "content"
    assert any("inline" in step for step in item.suggested_actions)


def test_the_work_item_page_shows_what_was_not_fetched(client, clinician, held):
    item = WorkItem.objects.get(document=held)
    client.force_login(clinician)

    html = client.get(reverse("casework:item", args=[item.public_id])).content.decode()

    assert "Not fetched:" in html
    assert "stylesheet from https://styles.example.org" in html
    assert "image from http://img.example.com x2" in html
    assert "1.png" not in html and "letter.css" not in html


def test_the_ig_timeline_shows_the_refused_resources_on_the_converted_version(held):
    entries = ig_document_timeline(document=held)

    [converted] = [e for e in entries if e.title == "Payload version: Converted"]
    details = dict(converted.details)
    assert details["refused external resources"] == (
        "stylesheet from https://styles.example.org; "
        "image from http://img.example.com x2"
    )
    [hold] = [e for e in entries if e.title.startswith("Held before sending")]
    assert "img.example.com x2" in dict(hold.details)["refused resources"]
    assert all("1.png" not in str(e.details) for e in entries)
