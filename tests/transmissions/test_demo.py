"""The demo data, driven by the engine against the simulator's demo scenario, ends
in every outcome it promises."""

from __future__ import annotations

import datetime as dt
import io

import time_machine
from django.core.management import call_command
from django.utils import timezone

from casework.models import WorkItem
from docflow.management.commands.seed_demo import DOCUMENTS
from docflow.models import Document, DocumentStatus, SendingOrganisation
from tests.transmissions.engine import connect_to, simulator_stats
from transmissions.services.pipeline import document_prepare_for_sending
from transmissions.services.sending import document_send
from transmissions.services.tracking import changes_feed_read

S = DocumentStatus


def run_engine_rounds(rounds: int) -> None:
    """What the qcluster does, in-process: prepare, send (retrying when due), track."""
    now = timezone.now()
    for round_number in range(rounds):
        with time_machine.travel(now + dt.timedelta(hours=round_number)):
            for pk in Document.objects.filter(status=S.SUBMITTED).values_list(
                "pk", flat=True
            ):
                document_prepare_for_sending(document_id=pk)
            for pk in Document.objects.filter(status=S.READY).values_list(
                "pk", flat=True
            ):
                document_send(document_id=pk)
            for organisation in SendingOrganisation.objects.all():
                changes_feed_read(sending_organisation_id=organisation.pk)


def test_demo_documents_end_in_every_promised_outcome(
    db, simulator, settings, monkeypatch, tmp_path
):
    settings.VAR_DIR = tmp_path / "var"
    settings.DEBUG = True  # seed_demo is for development machines only
    call_command("seed_demo", stdout=io.StringIO())
    connect_to(simulator, settings, monkeypatch)

    run_engine_rounds(6)

    outcomes = {
        document.idempotency_key: document.status
        for document in Document.objects.filter(source_system__startswith="demo:")
    }
    expected = {
        f"demo-{index:03d}": outcome
        for index, (*_, outcome) in enumerate(DOCUMENTS, start=1)
    }
    assert outcomes == expected
    assert set(expected.values()) == {
        S.ACCEPTED,
        S.DELIVERED,
        S.REJECTED,
        S.HELD,
        S.SYSTEM_ERROR,
        S.CANCELLED,
    }
    attention = Document.objects.filter(status__in=[S.HELD, S.REJECTED, S.SYSTEM_ERROR])
    assert WorkItem.objects.filter(status="open").count() == attention.count()
    sent = Document.objects.filter(
        status__in=[S.ACCEPTED, S.DELIVERED, S.REJECTED, S.SYSTEM_ERROR]
    ).count()
    stats = simulator_stats(simulator)
    assert stats["documents"] == stats["distinct_keys"] == sent
