"""The real mesh-sandbox (one per session, reset per test), our mailbox for the
sending organisation, a GP practice reached over MESH, and the practice's side of
the conversation, driven through our own MESH client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from casework.models import WorkItemReason
from docflow.models import (
    Channel,
    DestinationProfile,
    Document,
    DocumentStatus,
    Organisation,
    OrganisationStatus,
    SendingOrganisation,
)
from tests.conftest import reference_data_seed
from tests.factories import submit_document
from tests.mesh import sandbox as mesh_sandbox
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.client import MeshConnection, MeshMailboxClient
from transmissions.models import MeshMailbox
from transmissions.pipeline.sweep import document_prepare_for_sending

MESH_PROFILE = "gp_mesh"
MB = 1024 * 1024


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Iterator[mesh_sandbox.RunningSandbox]:
    running = mesh_sandbox.start_sandbox(tmp_path_factory.mktemp("mesh-sandbox"))
    try:
        yield running
    finally:
        mesh_sandbox.stop_sandbox(running)


@dataclass
class Practice:
    """The GP practice's mailbox: reads what we sent and answers it."""

    client: MeshMailboxClient

    def inbox(self) -> list[str]:
        return self.client.inbox()

    def take(self, message_id: str | None = None):
        """Download (and acknowledge) one message we sent; the newest by default."""
        ids = self.inbox()
        assert ids, "the practice's inbox is empty"
        message = self.client.retrieve(message_id or ids[-1])
        self.client.acknowledge(message.message_id)
        return message

    def answer(self, message, code: str, *, workflow: str | None = None) -> str:
        """Send an ITK3 response with ``code`` to the message we sent."""
        return self.client.send(
            recipient=mesh_sandbox.OUR_MAILBOX,
            content=itk3.response_message(
                response_to=itk3.message_header_id(message.content),
                code=code,
                sender_mailbox=mesh_sandbox.GP_MAILBOX,
            ),
            workflow_id=workflow or f"{mesh_sandbox.WORKFLOW}_ACK",
            local_id=f"ack-{code}",
            filename="response.json",
            content_type="application/fhir+json",
        )


def _connection(sandbox, mailbox_id: str) -> MeshConnection:
    return MeshConnection(
        url=sandbox.url,
        mailbox_id=mailbox_id,
        password=mesh_sandbox.PASSWORD,
        shared_key=mesh_sandbox.SHARED_KEY,
        ca_cert=str(sandbox.ca_path),
        max_retries=0,
    )


@pytest.fixture
def practice(sandbox) -> Iterator[Practice]:
    with MeshMailboxClient(_connection(sandbox, mesh_sandbox.GP_MAILBOX)) as client:
        yield Practice(client=client)


@pytest.fixture
def our_inbox(sandbox) -> Iterator[MeshMailboxClient]:
    """Our own mailbox, to look at what waits in it."""
    with MeshMailboxClient(_connection(sandbox, mesh_sandbox.OUR_MAILBOX)) as client:
        yield client


def _mesh_world(sandbox, settings, monkeypatch, *, reseed: bool) -> MeshMailbox:
    sandbox.reset()
    if reseed or not WorkItemReason.objects.filter(code="ITK-30002").exists():
        reference_data_seed()  # the MESH reasons (casework 0008) among them
    settings.DOCFLOW_MESH_BASE_URL = sandbox.url
    settings.DOCFLOW_MESH_CA_CERT = str(sandbox.ca_path)
    settings.DOCFLOW_MESH_MAX_RETRIES = 0
    monkeypatch.setenv("MESH_PASSWORD_RX1", mesh_sandbox.PASSWORD)
    monkeypatch.setenv("MESH_SHARED_KEY", mesh_sandbox.SHARED_KEY)
    DestinationProfile.objects.update_or_create(
        endpoint_type=MESH_PROFILE,
        defaults={
            "name": "GP practice over MESH",
            "channel": Channel.MESH,
            "max_file_size_bytes": 20 * MB,
            "allowed_media_types": ["application/pdf"],
            "reports_accepted": True,
        },
    )
    Organisation.objects.update_or_create(
        ods_code=mesh_sandbox.GP_ODS_CODE,
        defaults={
            "name": "Sandbox Surgery",
            "endpoint_type": MESH_PROFILE,
            "status": OrganisationStatus.ACTIVE,
        },
    )
    organisation, _ = SendingOrganisation.objects.get_or_create(
        ods_code="RX1",
        defaults={
            "name": "Example Hospitals NHS Trust",
            "connect_client_id": "client-RX1",
            "connect_secret_ref": "CONNECT_SECRET_RX1",
        },
    )
    return MeshMailbox.objects.create(
        sending_organisation=organisation,
        mailbox_id=mesh_sandbox.OUR_MAILBOX,
        password_ref="MESH_PASSWORD_RX1",
        shared_key_ref="MESH_SHARED_KEY",
        # The sandbox registers its own test workflows, not the national ones.
        default_workflow_id=mesh_sandbox.WORKFLOW,
    )


@pytest.fixture
def mesh(sandbox, transactional_db, settings, monkeypatch) -> MeshMailbox:
    """A sending organisation with a MESH mailbox, and practice X26 whose profile
    sends over MESH; the sandbox emptied. Transactional: inbox polls acknowledge
    only what has committed."""
    return _mesh_world(sandbox, settings, monkeypatch, reseed=True)


@pytest.fixture
def mesh_db(sandbox, db, settings, monkeypatch) -> MeshMailbox:
    """The same world inside the test's transaction, for sends without polls (the
    migrations' reference data is there: these run before transactional tests)."""
    return _mesh_world(sandbox, settings, monkeypatch, reseed=False)


def ready_document(mailbox: MeshMailbox, **overrides) -> Document:
    """A document for the MESH practice, prepared through the real services."""
    document = submit_document(
        sending_organisation=mailbox.sending_organisation,
        destination_ods_code=overrides.pop(
            "destination_ods_code", mesh_sandbox.GP_ODS_CODE
        ),
        **overrides,
    )
    prepared = document_prepare_for_sending(document_id=document.pk)
    assert prepared.document.status == DocumentStatus.READY, prepared.document
    return prepared.document


def resources_of(message) -> list[dict]:
    """Every resource in the ITK3 message we sent, the Document Bundle's included."""
    pending = [json.loads(message.content)]
    found = []
    while pending:
        resource = pending.pop(0)
        found.append(resource)
        if resource.get("resourceType") == "Bundle":
            pending.extend(entry["resource"] for entry in resource.get("entry", []))
    return found


def attachment_of(message) -> bytes:
    """The document's bytes inside the ITK3 message we sent."""
    import base64

    [binary] = [r for r in resources_of(message) if r["resourceType"] == "Binary"]
    return base64.b64decode(binary["content"])
