"""MESH mailbox upkeep: the daily handshake MESH asks every client for."""

from __future__ import annotations

import logging

from django.utils import timezone

from transmissions.channels.mesh.connections import mesh_client_for
from transmissions.channels.mesh.errors import MeshAuthFailed, MeshChannelError
from transmissions.channels.mesh.halts import mesh_credentials_halt
from transmissions.models import MeshMailbox

logger = logging.getLogger(__name__)


def mesh_mailbox_handshake(*, mailbox_id: int) -> MeshMailbox:
    """Validate one mailbox with MESH and record when, or why it failed; refused
    credentials also halt the mailbox's organisation (one halt, one incident)."""
    mailbox = MeshMailbox.objects.get(pk=mailbox_id)
    error = ""
    try:
        with mesh_client_for(mailbox) as client:
            client.handshake()
    except MeshAuthFailed as exc:
        error = f"{exc.error_class}: {exc}"[:255]
        mesh_credentials_halt(mailbox=mailbox, error=exc)
    except MeshChannelError as exc:
        error = f"{exc.error_class}: {exc}"[:255]
        logger.warning("MESH handshake of %s failed", mailbox.mailbox_id)
    fields = ["last_handshake_error"]
    mailbox.last_handshake_error = error
    if not error:
        mailbox.last_handshake_at = timezone.now()
        fields.append("last_handshake_at")
    mailbox.save(update_fields=fields)
    return mailbox


def mesh_mailboxes_handshake() -> int:
    """Handshake every active mailbox (daily); returns how many succeeded."""
    return sum(
        not mesh_mailbox_handshake(mailbox_id=pk).last_handshake_error
        for pk in MeshMailbox.objects.filter(is_active=True).values_list(
            "pk", flat=True
        )
    )
