"""transmissions' demo data, collected with every app's by ``manage.py seed_demo``
(docflow.demo.context says how): practice X26 is reached over MESH, and RX1 sends
through its mailbox on the local MESH sandbox."""

from __future__ import annotations

from django.db import transaction

from docflow.demo.context import DemoContext
from docflow.models import Channel, DestinationProfile
from transmissions.channels.mesh.demo_setup import mesh_demo_mailbox_seed


@transaction.atomic
def demo_mesh_seed(context: DemoContext) -> None:
    """The MESH destination profile and RX1's sandbox mailbox, each once."""
    DestinationProfile.objects.update_or_create(
        endpoint_type="gp_mesh",
        defaults={
            "name": "GP practice over MESH",
            "channel": Channel.MESH,
            "max_file_size_bytes": 20 * 1024 * 1024,
            "allowed_media_types": ["application/pdf"],
            "reports_accepted": True,
        },
    )
    mailbox = mesh_demo_mailbox_seed(sending_organisation=context.senders["RX1"])
    context.say(f"  MESH: {mailbox} for RX1")


SEEDERS = [("channels", demo_mesh_seed)]
