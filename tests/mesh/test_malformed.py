"""Malformed MESH answers, through a proxy in front of the real mesh-sandbox that
spoils the answers to one operation: each becomes the typed error its operation
calls for, and no document or poll ends in a bare exception. A spoiled answer to
an upload is ambiguous (the sandbox holds the message): outcome unknown, settled
by local id with one message at the practice."""

from __future__ import annotations

import pytest

from casework.models import WorkItem
from docflow.models import DocumentStatus
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import ready_document
from tests.mesh.spoiling import CASES, spoiling_proxy
from transmissions import tasks
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.client import MeshConnection, MeshMailboxClient
from transmissions.channels.mesh.errors import MeshMalformedAnswer, MeshMalformedRead
from transmissions.channels.mesh.inbox import mesh_inbox_poll, mesh_inboxes_poll
from transmissions.models import MeshInboxMessage, Transmission, TransmissionState
from transmissions.pipeline.sending import SendOutcome, document_send

S = DocumentStatus


@pytest.fixture
def proxy(sandbox, tmp_path):
    sandbox.reset()
    with spoiling_proxy(sandbox, tmp_path / "proxy") as running:
        yield running


def client_through(proxy, mailbox_id: str = mesh_sandbox.OUR_MAILBOX):
    return MeshMailboxClient(
        MeshConnection(
            url=proxy.url,
            mailbox_id=mailbox_id,
            password=mesh_sandbox.PASSWORD,
            shared_key=mesh_sandbox.SHARED_KEY,
            ca_cert=str(proxy.ca_path),
            max_retries=0,
        )
    )


def upload(client, local_id: str = "spoiled-1") -> str:
    return client.send(
        recipient=mesh_sandbox.GP_MAILBOX,
        content=b"{}",
        workflow_id=mesh_sandbox.WORKFLOW,
        local_id=local_id,
        filename="x.json",
    )


@pytest.mark.parametrize("case", CASES)
def test_a_spoiled_answer_to_an_upload_is_ambiguous_and_mesh_holds_the_message(
    proxy, practice, case
):
    proxy.spoil["upload"] = case
    with client_through(proxy) as client, pytest.raises(MeshMalformedAnswer) as caught:
        upload(client)

    assert caught.value.retry_safe is False
    assert caught.value.error_class == "malformed"
    [held] = practice.inbox()
    assert practice.client.retrieve(held).local_id == "spoiled-1"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("operation", ["inbox", "tracking", "lookup"])
def test_a_spoiled_answer_to_a_read_is_safe_to_retry(proxy, operation, case):
    with client_through(proxy) as client:
        message_id = upload(client)
        proxy.spoil[operation] = case
        read = {
            "inbox": lambda: client.inbox(),
            "tracking": lambda: client.track(message_id),
            "lookup": lambda: client.lookup(
                ods_code=mesh_sandbox.GP_ODS_CODE, workflow_id=mesh_sandbox.WORKFLOW
            ),
        }[operation]

        with pytest.raises(MeshMalformedRead) as caught:
            read()
        proxy.spoil.clear()

        assert caught.value.retry_safe is True
        assert read() is not None  # asked again, it answers without an error


@pytest.mark.parametrize("case", ["no_member", "wrong_type"])
def test_a_retrieved_message_with_spoiled_headers_is_safe_to_retry(proxy, case):
    with (
        client_through(proxy) as ours,
        client_through(proxy, mesh_sandbox.GP_MAILBOX) as gp,
    ):
        upload(ours)
        [message_id] = gp.inbox()
        proxy.spoil["retrieve"] = case

        with pytest.raises(MeshMalformedRead, match="messagetype"):
            gp.retrieve(message_id)
        proxy.spoil.clear()
        assert gp.retrieve(message_id).message_type == "DATA"


@pytest.mark.parametrize("case", CASES)
def test_a_spoiled_answer_to_a_send_is_settled_by_local_id_with_one_message(
    mesh_db, proxy, practice, settings, case
):
    document = ready_document(mesh_db)
    settings.DOCFLOW_MESH_BASE_URL = proxy.url
    settings.DOCFLOW_MESH_CA_CERT = str(proxy.ca_path)
    proxy.spoil["upload"] = case

    result = document_send(document_id=document.pk)

    document.refresh_from_db()
    transmission = Transmission.objects.get(document=document)
    assert result.outcome == SendOutcome.OUTCOME_UNKNOWN
    assert document.status == S.OUTCOME_UNKNOWN
    assert transmission.last_error_class == "malformed"
    assert list(
        WorkItem.objects.filter(document=document).values_list("category", flat=True)
    ) == ["outcome_unknown"]

    proxy.spoil.clear()
    assert tasks.settle_outcome_unknown(document.pk) == "found"

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert document.status == S.DELIVERED
    assert transmission.state == TransmissionState.POSTED
    assert practice.inbox() == [transmission.external_id]


def test_a_spoiled_inbox_list_fails_the_poll_quietly_and_the_next_poll_works(
    mesh, practice, settings, proxy
):
    document = ready_document(mesh)
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    message = practice.take()
    practice.answer(message, itk3.INFRASTRUCTURE_OK)
    settings.DOCFLOW_MESH_BASE_URL = proxy.url
    settings.DOCFLOW_MESH_CA_CERT = str(proxy.ca_path)

    proxy.spoil["inbox"] = "truncated"
    assert mesh_inboxes_poll() == {}
    assert not MeshInboxMessage.objects.exists()

    proxy.spoil = {"retrieve": "no_member"}
    skipped = mesh_inbox_poll(mailbox_id=mesh.pk)
    assert (skipped.outcomes, skipped.acknowledged) == ({}, 0)

    proxy.spoil.clear()
    polled = mesh_inbox_poll(mailbox_id=mesh.pk)
    assert (polled.outcomes, polled.acknowledged) == ({"applied": 1}, 1)
