"""Tracking MESH messages: whether the practice's system has collected each one.

The practice's acknowledgements and MESH's reports come through our inbox; MESH
asks that its tracking call is not polled often. So a message is tracked only once
it has waited DOCFLOW_MESH_TRACK_AFTER_SECONDS (default an hour) since its last
news, and then no more often than that: ``acknowledged`` in MESH means collected
from the practice's mailbox, recorded on the transmission.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from docflow.models import Channel
from transmissions.channels.mesh.connections import mesh_client_for, mesh_setting
from transmissions.channels.mesh.errors import (
    MeshAuthFailed,
    MeshChannelError,
    MeshNotFound,
)
from transmissions.channels.mesh.halts import mesh_credentials_halt
from transmissions.channels.mesh.inbox import InboxPoll, mesh_inboxes_poll
from transmissions.models import MeshMailbox, Transmission, TransmissionState

logger = logging.getLogger(__name__)

# Statuses MESH reports that say no more than we know already.
UNCHANGED = frozenset({"accepted", "uploading"})


def mesh_transmissions_track(*, limit: int = 100) -> int:
    """Ask MESH about posted messages with no news for a while; returns how many
    now show as collected by the practice."""
    wait = timedelta(seconds=int(mesh_setting("TRACK_AFTER_SECONDS", 3600)))
    now = timezone.now()
    due = list(
        Transmission.objects.filter(
            channel=Channel.MESH,
            state=TransmissionState.POSTED,
            mesh_status="accepted",
            last_status_at__lte=now - wait,
        ).order_by("last_status_at")[:limit]
    )
    collected = 0
    mailboxes = {
        m.sending_organisation_id: m
        for m in MeshMailbox.objects.filter(
            sending_organisation_id__in={t.sending_organisation_id for t in due}
        )
    }
    for transmission in due:
        mailbox = mailboxes.get(transmission.sending_organisation_id)
        if mailbox is None:
            continue
        try:
            with mesh_client_for(mailbox) as client:
                tracking = client.track(transmission.external_id)
        except MeshNotFound:
            tracking = None
        except MeshAuthFailed as exc:
            mesh_credentials_halt(mailbox=mailbox, error=exc)
            break
        except MeshChannelError as exc:
            logger.warning("MESH tracking unavailable (%s)", exc.error_class)
            break
        update = {"last_status_at": timezone.now()}
        if tracking is not None and tracking.status not in UNCHANGED:
            update["mesh_status"] = tracking.status[:32]
            collected += tracking.status == "acknowledged"
        # Compare-and-set: news from the inbox meanwhile wins over this.
        Transmission.objects.filter(
            pk=transmission.pk,
            state=TransmissionState.POSTED,
            mesh_status="accepted",
        ).update(**update)
    return collected


def mesh_round() -> dict[str, InboxPoll]:
    """What the MESH schedule does each minute: every inbox, then due tracking."""
    polls = mesh_inboxes_poll()
    mesh_transmissions_track()
    return polls
