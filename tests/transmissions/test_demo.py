"""The demo data, driven by the engine against the simulator's demo scenario, ends
in every outcome it promises."""

from __future__ import annotations

import datetime as dt
import io

import time_machine
from django.core.management import call_command
from django.utils import timezone

from casework.models import WorkItem
from docflow.demo.documents import DOCUMENTS
from docflow.models import Channel, Document, DocumentStatus, SendingOrganisation
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import _connection, sandbox  # noqa: F401 - a fixture
from tests.transmissions.engine import connect_to, simulator_stats
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.channels.mesh.client import MeshMailboxClient
from transmissions.channels.mesh.demo_practice import answer_waiting
from transmissions.channels.mesh.inbox import mesh_inboxes_poll
from transmissions.pipeline.sending import document_send
from transmissions.pipeline.sweep import document_prepare_for_sending

S = DocumentStatus


def run_engine_rounds(rounds: int, practice: MeshMailboxClient) -> None:
    """What the qcluster does, in-process: prepare, send (retrying when due), track
    (Connect's feed and our MESH inbox); and what the MESH practice does: answer."""
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
            answer_waiting(practice, business_code="30001")
            mesh_inboxes_poll()


def test_demo_documents_end_in_every_promised_outcome(
    reference_data,
    simulator,
    sandbox,  # noqa: F811 - the fixture imported above
    settings,
    monkeypatch,
    tmp_path,
):
    # Transactional: the MESH inbox poll acknowledges only what has committed.
    settings.VAR_DIR = tmp_path / "var"
    settings.DEBUG = True  # seed_demo is for development machines only
    # The demo's MESH mailbox points at this sandbox, as scripts/run-dev's does.
    sandbox.reset()
    monkeypatch.setenv("DOCFLOW_MESH_SANDBOX_PORT", sandbox.url.rsplit(":", 1)[1])
    monkeypatch.setenv("DOCFLOW_MESH_SANDBOX_DIR", str(sandbox.ca_path.parent))
    monkeypatch.setenv("MESH_PASSWORD_RX1", mesh_sandbox.PASSWORD)
    monkeypatch.setenv("MESH_SHARED_KEY", mesh_sandbox.SHARED_KEY)
    call_command("seed_demo", stdout=io.StringIO())
    connect_to(simulator, settings, monkeypatch)

    with MeshMailboxClient(_connection(sandbox, mesh_sandbox.GP_MAILBOX)) as practice:
        run_engine_rounds(6, practice)

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
    )
    over_mesh = sent.filter(transmissions__channel=Channel.MESH)
    assert [d.destination_ods_code for d in over_mesh] == ["X26"]
    assert over_mesh.get().status == S.ACCEPTED
    sent = sent.count() - 1
    stats = simulator_stats(simulator)
    assert stats["documents"] == stats["distinct_keys"] == sent
