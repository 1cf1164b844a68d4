"""The demo's MESH set-up: the sending organisation's mailbox on the local MESH
sandbox (``scripts/run-mesh-sandbox``), trusting the sandbox's own CA.

The sandbox knows only its test mailboxes and workflows: we send as X26ABC1 under
TEST_WORKFLOW to practice X26, whose mailbox X26ABC2 answers on TEST_WORKFLOW_ACK
(``transmissions.channels.mesh.demo_practice``). The secrets stay in the environment
(``MESH_PASSWORD_<ODS>``, ``MESH_SHARED_KEY``), set by ``scripts/run-dev``.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from docflow.models import SendingOrganisation
from transmissions.models import MeshMailbox

DEMO_MAILBOX = "X26ABC1"
DEMO_WORKFLOW = "TEST_WORKFLOW"


def mesh_demo_mailbox_seed(*, sending_organisation: SendingOrganisation) -> MeshMailbox:
    """Create (or bring up to date) the demo mailbox of one sending organisation."""
    port = os.environ.get("DOCFLOW_MESH_SANDBOX_PORT", "8700")
    directory = os.environ.get(
        "DOCFLOW_MESH_SANDBOX_DIR", str(Path(settings.VAR_DIR) / "mesh-sandbox")
    )
    mailbox, _ = MeshMailbox.objects.update_or_create(
        sending_organisation=sending_organisation,
        defaults={
            "mailbox_id": DEMO_MAILBOX,
            "password_ref": f"MESH_PASSWORD_{sending_organisation.ods_code}",
            "shared_key_ref": "MESH_SHARED_KEY",
            "base_url": f"https://127.0.0.1:{port}",
            "ca_cert_path": str(Path(directory).resolve() / "ca.pem"),
            "default_workflow_id": DEMO_WORKFLOW,
            "is_active": True,
        },
    )
    return mailbox
