"""A rejection Connect reports as text (a system reason, no code) is recorded as the
reason its text starts with, and classified; text nobody classified is never kept.
The document is sent to the real simulator; the rejection report is the one value
made here, as the simulator only rejects with codes."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from casework.classification import UNRECOGNISED_TEXT
from casework.models import WorkItem, WorkItemStatus
from docflow.models import DocumentStatus
from operations.models import Incident
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
)
from transmissions.channels.connect.adapter import DocumentStatus as ConnectStatus
from transmissions.channels.connect.adapter import Rejection
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.channels.connect.tracking.statuses import transmission_apply_status
from transmissions.models import Transmission
from transmissions.pipeline.sending import document_send


@pytest.fixture
def delivered(simulator, settings, monkeypatch, sending_organisation):
    """A document delivered to a practice that never acknowledges (A81012)."""
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    document = ready_document(sending_organisation, "A81012")
    document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    transmission = Transmission.objects.get(document=document)
    assert transmission.document.status == DocumentStatus.DELIVERED
    return transmission


def _reject(transmission: Transmission, *, code: str, text: str):
    status = ConnectStatus(
        guid=transmission.external_id,
        status_code=4005,
        description="Rejected",
        updated_at=timezone.now(),
        recipient_ods_code="A81012",
        rejection=Rejection(code=code, reason=text, rejected_at=timezone.now()),
    )
    with transaction.atomic():
        locked = Transmission.objects.select_for_update().get(pk=transmission.pk)
        document = transmission_apply_status(transmission=locked, status=status)
    transmission.refresh_from_db()
    return document, WorkItem.objects.get(document=document, status=WorkItemStatus.OPEN)


def test_a_system_reason_sent_as_text_is_recorded_and_classified_by_its_prefix(
    delivered, caplog
):
    caplog.set_level(logging.DEBUG)

    document, item = _reject(
        delivered, code="", text="Failed to Retrieve File (7006) at 12:03"
    )

    assert document.status == DocumentStatus.REJECTED
    assert document.status_reason == "Failed to Retrieve File (7006)"
    assert delivered.rejection_code == "Failed to Retrie"  # the column's 16
    assert item.reason_code == "Failed to Retrieve File (7006)"
    assert item.bucket.key == "infrastructure"
    assert not Incident.objects.exists()
    rejected = AuditEvent.objects.get(action="document.mark_rejected")
    assert rejected.data["reason"] == "Failed to Retrieve File (7006)"
    assert "12:03" not in str(rejected.data)


def test_unrecognised_text_is_never_stored_and_opens_a_needs_classifying_item(
    delivered, caplog
):
    caplog.set_level(logging.DEBUG)
    text = "Patient Jane Doe no longer lives here"

    document, item = _reject(delivered, code="", text=text)

    assert document.status_reason == UNRECOGNISED_TEXT
    assert item.bucket.key == "needs_classifying"
    assert Incident.objects.get().scope == f"reason:{UNRECOGNISED_TEXT}"
    recorded = " ".join(
        [
            *(str(event.data) for event in AuditEvent.objects.all()),
            *(record.getMessage() for record in caplog.records),
            delivered.rejection_code,
            item.reason_title,
        ]
    )
    assert "Jane" not in recorded
