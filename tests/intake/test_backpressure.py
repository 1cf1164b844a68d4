"""Intake backpressure on the other channels: the MLLP listener answers AR (resend
later) and stores nothing; the file drop leaves its files for a later pass."""

from __future__ import annotations

import pytest

from docflow.models import Document, DocumentStatus
from intake.file_drop import folder_process
from intake.mdm_samples import mdm_message
from intake.models import IntakeChannel, SourceSystem
from tests.factories import submit_document
from tests.intake.conftest import ack_code, send
from tests.intake.test_file_drop import drop, listing, sidecar
from tests.samples import pdf_bytes


def fill_backlog(settings, organisation, depth: int = 1) -> list[Document]:
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = 0
    waiting = [submit_document(sending_organisation=organisation) for _ in range(depth)]
    settings.DOCFLOW_INTAKE_BACKPRESSURE_DEPTH = depth
    settings.DOCFLOW_INTAKE_BACKPRESSURE_RETRY_SECONDS = 45
    return waiting


def drain(waiting: list[Document]) -> None:
    Document.objects.filter(pk__in=[d.pk for d in waiting]).update(
        status=DocumentStatus.READY
    )


def test_mllp_answers_ar_while_busy_and_aa_when_resent_later(
    listener, source, organisation, settings
):
    waiting = fill_backlog(settings, organisation)
    with listener.client() as client:
        busy = send(client, mdm_message(unique_id="DOC-BUSY"))
        assert ack_code(busy) == "AR"
        assert "send this message again in 45 seconds" in str(
            busy.extract_field("MSA", 1, 3)
        )
        assert not Document.objects.filter(idempotency_key="DOC-BUSY").exists()

        drain(waiting)
        resent = send(client, mdm_message(unique_id="DOC-BUSY"))
    assert ack_code(resent) == "AA"
    assert Document.objects.filter(idempotency_key="DOC-BUSY").count() == 1


@pytest.mark.django_db
def test_file_drop_leaves_the_pair_in_place_while_busy(settings, tmp_path):
    from tests.factories import SendingOrganisationFactory

    organisation = SendingOrganisationFactory(ods_code="RX1")
    drop_source = SourceSystem.objects.create(
        code="rx1-drop",
        name="RX1 letters folder",
        channel=IntakeChannel.FILE_DROP,
        sending_organisation=organisation,
        drop_folder=str(tmp_path / "drop"),
    )
    waiting = fill_backlog(settings, organisation)
    drop(drop_source, "letter-1", pdf_bytes("dropped"), sidecar())

    assert folder_process(drop_source) == {"processed": 0, "rejected": 0}
    assert listing(drop_source) == ["letter-1.json", "letter-1.pdf"]
    assert not Document.objects.filter(idempotency_key="LETTER-1").exists()

    drain(waiting)
    assert folder_process(drop_source) == {"processed": 1, "rejected": 0}
    assert Document.objects.filter(idempotency_key="LETTER-1").count() == 1
