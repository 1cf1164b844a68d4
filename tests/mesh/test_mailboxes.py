"""Mailbox upkeep and the client's view of failures, against the real sandbox."""

from __future__ import annotations

import pytest
import requests

from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import ready_document
from transmissions.channels.mesh.client import (
    MeshConnection,
    MeshMailboxClient,
    classify,
)
from transmissions.channels.mesh.connections import mesh_connection_for
from transmissions.channels.mesh.demo_setup import mesh_demo_mailbox_seed
from transmissions.channels.mesh.errors import (
    MeshAuthFailed,
    MeshConfigurationError,
    MeshOutcomeUnknown,
    MeshRefused,
    MeshUnavailable,
)
from transmissions.channels.mesh.mailboxes import mesh_mailbox_handshake
from transmissions.channels.mesh.sending import mesh_recipient_resolve
from transmissions.channels.mesh.tracking import mesh_transmissions_track
from transmissions.models import MeshEndpointLookup, Transmission, TransmissionState
from transmissions.pipeline.sending import SendOutcome, document_send


def test_handshake_records_when_the_mailbox_was_validated(mesh_db):
    mailbox = mesh_mailbox_handshake(mailbox_id=mesh_db.pk)

    assert mailbox.last_handshake_at is not None
    assert mailbox.last_handshake_error == ""


def test_handshake_with_a_wrong_password_records_the_refusal(mesh_db, monkeypatch):
    monkeypatch.setenv("MESH_PASSWORD_RX1", "not-the-password")

    mailbox = mesh_mailbox_handshake(mailbox_id=mesh_db.pk)

    assert mailbox.last_handshake_at is None
    assert mailbox.last_handshake_error.startswith("auth:")


def test_secrets_come_from_the_environment_never_the_database(mesh_db, monkeypatch):
    monkeypatch.delenv("MESH_SHARED_KEY")

    with pytest.raises(MeshConfigurationError):
        mesh_connection_for(mesh_db)


def test_lookup_finds_the_practice_mailbox_for_the_workflow_and_remembers_it(
    mesh_db,
):
    with MeshMailboxClient(mesh_connection_for(mesh_db)) as client:
        found = mesh_recipient_resolve(
            client=client,
            ods_code=mesh_sandbox.GP_ODS_CODE,
            workflow_id=mesh_sandbox.WORKFLOW,
        )
        missing = mesh_recipient_resolve(
            client=client,
            ods_code=mesh_sandbox.GP_ODS_CODE,
            workflow_id="GPCONNECT_SEND_DOCUMENT",
        )

    assert found == mesh_sandbox.GP_MAILBOX
    assert missing is None
    assert MeshEndpointLookup.objects.get(
        ods_code=mesh_sandbox.GP_ODS_CODE, workflow_id=mesh_sandbox.WORKFLOW
    ).mailbox_id == (mesh_sandbox.GP_MAILBOX)


def test_unknown_recipient_is_refused_with_meshs_code(mesh_db):
    with (
        MeshMailboxClient(mesh_connection_for(mesh_db)) as client,
        pytest.raises(MeshRefused) as refused,
    ):
        client.send(
            recipient="NOSUCHBOX",
            content=b"{}",
            workflow_id=mesh_sandbox.WORKFLOW,
            local_id="refused-1",
            filename="x.json",
        )
    assert refused.value.code == "12"


def test_upload_to_a_closed_port_is_safe_to_retry():
    port = mesh_sandbox.free_port()
    connection = MeshConnection(
        url=f"https://127.0.0.1:{port}",
        mailbox_id=mesh_sandbox.OUR_MAILBOX,
        password=mesh_sandbox.PASSWORD,
        shared_key=mesh_sandbox.SHARED_KEY,
        max_retries=0,
    )
    with (
        MeshMailboxClient(connection) as client,
        pytest.raises(MeshUnavailable) as failed,
    ):
        client.send(
            recipient=mesh_sandbox.GP_MAILBOX,
            content=b"{}",
            workflow_id=mesh_sandbox.WORKFLOW,
            local_id="closed-1",
            filename="x.json",
        )
    assert failed.value.retry_safe


def test_plain_http_is_refused():
    with pytest.raises(MeshConfigurationError):
        MeshMailboxClient(
            MeshConnection(
                url="http://127.0.0.1:1",
                mailbox_id=mesh_sandbox.OUR_MAILBOX,
                password="x",
                shared_key="y",
            )
        )


@pytest.mark.parametrize(
    ("error", "upload", "expected"),
    [
        (requests.exceptions.ReadTimeout(), True, MeshOutcomeUnknown),
        (requests.exceptions.ReadTimeout(), False, MeshUnavailable),
        (requests.exceptions.ConnectTimeout(), True, MeshUnavailable),
        (
            requests.exceptions.ConnectionError("reset by peer"),
            True,
            MeshOutcomeUnknown,
        ),
    ],
)
def test_a_failure_after_the_upload_left_makes_the_outcome_unknown(
    error, upload, expected
):
    assert isinstance(classify(error, upload=upload), expected)


def test_forbidden_means_our_credentials(mesh_db, monkeypatch):
    monkeypatch.setenv("MESH_PASSWORD_RX1", "wrong")
    with (
        MeshMailboxClient(mesh_connection_for(mesh_db)) as client,
        pytest.raises(MeshAuthFailed),
    ):
        client.inbox()


def test_demo_mailbox_reaches_the_sandbox_with_its_own_ca(
    mesh_db, sandbox, monkeypatch
):
    monkeypatch.setenv("DOCFLOW_MESH_SANDBOX_DIR", str(sandbox.ca_path.parent))
    monkeypatch.setenv("DOCFLOW_MESH_SANDBOX_PORT", sandbox.url.rsplit(":", 1)[1])
    mesh_db.base_url = "https://mesh.invalid"
    mesh_db.save(update_fields=["base_url"])

    mailbox = mesh_demo_mailbox_seed(sending_organisation=mesh_db.sending_organisation)

    assert mailbox.pk == mesh_db.pk
    assert mailbox.base_url == sandbox.url
    assert mesh_mailbox_handshake(mailbox_id=mailbox.pk).last_handshake_error == ""


def test_tracking_records_that_the_practice_collected_the_message(
    mesh_db, practice, settings
):
    settings.DOCFLOW_MESH_TRACK_AFTER_SECONDS = 0
    document = ready_document(mesh_db)
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    transmission = Transmission.objects.get(document=document)
    assert mesh_transmissions_track() == 0  # still waiting in the mailbox

    practice.take()
    assert mesh_transmissions_track() == 1

    transmission.refresh_from_db()
    assert transmission.mesh_status == "acknowledged"
    assert transmission.state == TransmissionState.POSTED  # acks still to come


def test_unreadable_tls_files_are_a_configuration_error(tmp_path):
    with pytest.raises(MeshConfigurationError):
        MeshMailboxClient(
            MeshConnection(
                url="https://127.0.0.1:1",
                mailbox_id=mesh_sandbox.OUR_MAILBOX,
                password="x",
                shared_key="y",
                ca_cert=str(tmp_path / "missing-ca.pem"),
            )
        )
