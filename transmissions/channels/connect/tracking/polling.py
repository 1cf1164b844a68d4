"""Polling Connect: documents the changes feed has not settled are asked about one
by one when their next poll is due, less often the older they get
(``statuses.poll_interval``); and one tracking round (feed, then poll).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from docflow.models import Channel, SendingOrganisation
from transmissions.channels.connect.adapter import DocumentStatus as ConnectStatus
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
    ConnectNotFound,
)
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.channels.connect.tracking.statuses import (
    poll_interval,
    transmission_apply_status,
)
from transmissions.engine.outcomes import credentials_halt
from transmissions.models import Transmission, TransmissionState

logger = logging.getLogger(__name__)

TRACKED = (TransmissionState.POSTED, TransmissionState.PENDING)


def connect_tracking_round() -> int:
    """Read the changes feed of every sending organisation with documents at
    Connect, then poll what the feed left due; returns the changes applied."""
    organisation_ids = (
        Transmission.objects.filter(state__in=TRACKED, channel=Channel.CONNECT)
        .values_list("sending_organisation_id", flat=True)
        .distinct()
    )
    applied = 0
    for organisation_id in SendingOrganisation.objects.filter(
        pk__in=list(organisation_ids)
    ).values_list("pk", flat=True):
        applied += changes_feed_read(sending_organisation_id=organisation_id)
    return applied + transmissions_poll_due()


def transmissions_poll_due(*, limit: int = 200) -> int:
    """Poll, one by one, posted transmissions whose next poll is due (the feed's
    fallback); returns how many were asked about."""
    now = timezone.now()
    due = list(
        Transmission.objects.filter(
            state=TransmissionState.POSTED,
            channel=Channel.CONNECT,
            next_poll_at__lte=now,
        )
        .select_related("sending_organisation")
        .order_by("next_poll_at")[:limit]
    )
    grouped: dict[int, list[Transmission]] = defaultdict(list)
    for transmission in due:
        grouped[transmission.sending_organisation_id].append(transmission)
    polled = 0
    for items in grouped.values():
        client = connect_client_for(items[0].sending_organisation)
        for item in items:
            try:
                status = client.get_status(item.external_id)
            except ConnectNotFound:
                logger.warning("Connect does not know transmission %s", item.public_id)
                _push_next_poll(item.pk)
                continue
            except (ConnectAuthFailed, ConnectConfigurationError) as exc:
                credentials_halt(
                    sending_organisation=item.sending_organisation, error=exc
                )
                break
            except ConnectError:
                break  # Connect is struggling: leave the rest for the next round
            _apply_polled(item.pk, status)
            polled += 1
    return polled


@transaction.atomic
def _apply_polled(transmission_id: int, status: ConnectStatus) -> None:
    transmission = (
        Transmission.objects.select_for_update(of=("self",))
        .select_related("document", "payload_version", "document__destination")
        .get(pk=transmission_id)
    )
    if transmission.state == TransmissionState.POSTED:
        transmission_apply_status(transmission=transmission, status=status)


def _push_next_poll(transmission_id: int) -> None:
    now = timezone.now()
    transmission = Transmission.objects.get(pk=transmission_id)
    age = now - (transmission.posted_at or now)
    Transmission.objects.filter(pk=transmission_id).update(
        next_poll_at=now + poll_interval(age=age)
    )
