"""``manage.py mesh_witness_test`` against the real mesh-sandbox."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from tests.mesh import sandbox as mesh_sandbox
from transmissions.channels.mesh.conformance.witness import STEPS


def test_every_witnessed_step_passes_against_mesh_sandbox(mesh, our_inbox):
    out = io.StringIO()

    call_command(
        "mesh_witness_test",
        "--lookup-ods",
        mesh_sandbox.GP_ODS_CODE,
        "--chunk-size",
        "65536",
        stdout=out,
    )

    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[: len(STEPS)]] == [
        f"PASS  {name}" for name in STEPS
    ]
    assert f"{mesh_sandbox.GP_ODS_CODE}/{mesh_sandbox.WORKFLOW}: " in lines[1]
    assert mesh_sandbox.GP_MAILBOX in lines[1]
    assert "in 3 chunks" in lines[3]
    assert "acknowledged" in lines[7]
    assert lines[-1] == f"All {len(STEPS)} steps passed for {mesh.mailbox_id}."
    # Everything the witness sent it took back: the inbox is as it was.
    assert our_inbox.inbox() == []
    event = AuditEvent.objects.get(action="mesh.witness_test")
    assert event.data["passed"] is True


def test_a_refused_mailbox_fails_the_witness_test_at_the_handshake(mesh, monkeypatch):
    monkeypatch.setenv("MESH_PASSWORD_RX1", "not-the-password")
    out = io.StringIO()

    with pytest.raises(CommandError):
        call_command("mesh_witness_test", stdout=out)

    assert out.getvalue().splitlines()[0].startswith("FAIL  handshake: MeshAuthFailed")
    assert "SKIP  tracking" in out.getvalue()
    assert AuditEvent.objects.get(action="mesh.witness_test").data["passed"] is False
