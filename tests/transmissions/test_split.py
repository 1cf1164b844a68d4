"""Split documents: each part is sent and tracked; the parent follows its parts."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from docflow.models import DestinationProfile, Document, DocumentStatus, Organisation
from tests.docflow.test_preparation import multi_page_pdf
from tests.factories import submit_document
from tests.transmissions.engine import connect_to, simulator_stats
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import Transmission
from transmissions.pipeline.sending import SendOutcome, document_send
from transmissions.pipeline.sweep import document_prepare_for_sending

S = DocumentStatus


@pytest.fixture
def split_parent(simulator, settings, monkeypatch, sending_organisation):
    connect_to(simulator, settings, monkeypatch)
    pdf = multi_page_pdf(4)
    DestinationProfile.objects.update_or_create(
        endpoint_type="small_box",
        defaults={
            "name": "Small box",
            "max_file_size_bytes": len(multi_page_pdf(1)) * 2,
            "allowed_media_types": ["application/pdf"],
        },
    )
    Organisation.objects.create(
        ods_code="A81001", name="Riverside Surgery", endpoint_type="small_box"
    )
    parent = submit_document(
        sending_organisation=sending_organisation,
        destination_ods_code="A81001",
        content=pdf,
    )
    prepared = document_prepare_for_sending(document_id=parent.pk)
    assert len(prepared.sendable) >= 2
    return prepared.document


def test_the_parent_itself_is_never_sent(split_parent, simulator):
    assert document_send(document_id=split_parent.pk).outcome == SendOutcome.NOT_READY
    assert simulator_stats(simulator)["documents"] == 0


def test_parent_is_accepted_once_every_part_is(
    split_parent, sending_organisation, simulator
):
    parts = list(Document.objects.filter(parent=split_parent).order_by("part_number"))
    for part in parts[:-1]:
        document_send(document_id=part.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    split_parent.refresh_from_db()
    assert split_parent.status == S.READY  # one part still to go

    document_send(document_id=parts[-1].pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)

    split_parent.refresh_from_db()
    assert split_parent.status == S.ACCEPTED
    assert not Transmission.objects.filter(document=split_parent).exists()
    assert Transmission.objects.filter(document__parent=split_parent).count() == len(
        parts
    )
    assert simulator_stats(simulator)["documents"] == len(parts)
    last = AuditEvent.objects.filter(target_id=str(split_parent.public_id)).latest(
        "sequence"
    )
    assert last.action == "document.mark_accepted"
    assert last.data["reason"] == f"all {len(parts)} parts accepted"
