"""MESH refused a mailbox's credentials: stop the organisation, as over Connect.

Whichever call meets the refusal (an upload, the inbox poll, the handshake,
tracking, settling), the answer is the same: one TOKEN_FAILURE halt for the
mailbox's sending organisation, opened through ``outbound_halt_open`` (opening it
again is a no-op), which the operations watch turns into one incident. Documents
wait in ``ready`` until an operator fixes the secret and resumes; no document is
held and no work item is opened for it.
"""

from __future__ import annotations

import logging

from transmissions.channels.mesh.errors import MeshAuthFailed
from transmissions.engine.controls import outbound_halt_open
from transmissions.models import HaltKind, MeshMailbox, OutboundHalt

logger = logging.getLogger(__name__)


def mesh_credentials_halt(
    *, mailbox: MeshMailbox, error: MeshAuthFailed
) -> OutboundHalt:
    """Open (or find open) the one credentials halt of the mailbox's sending
    organisation; its reason names the mailbox, never a document or patient."""
    logger.error(
        "MESH refused the credentials of mailbox %s: outbound halted",
        mailbox.mailbox_id,
    )
    return outbound_halt_open(
        kind=HaltKind.TOKEN_FAILURE,
        reason=f"MESH credentials refused for mailbox {mailbox.mailbox_id}: {error}",
        sending_organisation=mailbox.sending_organisation,
    )
