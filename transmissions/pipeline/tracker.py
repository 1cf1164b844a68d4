"""The tracker: one loop, on one worker at a time, that applies the channels'
statuses (each channel's ``tracking_round``) while anything is on its way, and
keeps the clock (``clock``): each second it queues retries, circuit trials and the
settling of expired claims as they come due.

Each run is a django-q2 task of at most ``seconds`` (inside the task timeout),
under the lease ``transmissions.tracker`` (``docflow.leases``: a row with expiry,
renewed by a heartbeat while the run lives, on SQLite and PostgreSQL alike), so it
is the only tracker on any number of nodes. A run queues its successor shortly
before it ends; the successor waits for the lease, so tracking and the clock go on
without a gap, idle or not (idle, a round is a few indexed queries). A run that
finds the lease held stands by for up to ``wait`` seconds: the minute schedule
starts runs that wait a whole loop, so a standby is always there, and when the
holder dies (SIGKILL, a lost node) its lease runs out within
DOCFLOW_LEASE_SECONDS and the standby takes over within a poll of that.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from docflow.leases import lease_held
from docflow.models import Document, DocumentStatus
from transmissions.channels.registry import CHANNELS
from transmissions.models import Transmission, TransmissionState
from transmissions.pipeline.clock import clock_round
from transmissions.queue import TRACK, enqueue_on_commit

S = DocumentStatus
logger = logging.getLogger(__name__)

# Documents that will be posted soon: tracking keeps going while there are any.
ON_ITS_WAY = (S.SUBMITTED, S.READY, S.SENDING, S.OUTCOME_UNKNOWN)
TRACKED = (TransmissionState.POSTED, TransmissionState.PENDING)
# The lease that makes a run the tracker.
TRACKER_LEASE = "transmissions.tracker"
# A run queues its successor this long before it ends (at most a fifth of the
# run): time for the successor to come up through the queue.
HANDOVER_SECONDS = 10.0
# Expired claims are settled in the loop itself for up to this long a round (a
# look-up by key each), the rest by tasks.
CLAIMS_SETTLED_HERE_SECONDS = 2.0


def anything_on_its_way() -> bool:
    """Posted documents not settled yet, or documents that will be posted soon."""
    return (
        Transmission.objects.filter(state__in=TRACKED).exists()
        or Document.objects.filter(status__in=ON_ITS_WAY).exists()
    )


def tracking_round() -> int:
    """One tracking round of every channel that tracks here (Connect: its changes
    feed, then the poll); returns the changes applied. MESH transmissions are
    tracked through their inboxes on their own schedule, never here."""
    return sum(channel.tracking_round() for channel in CHANNELS.values())


def statuses_track(*, seconds: float, wait: float = 0.0) -> int:
    """Keep the clock each DOCFLOW_CLOCK_ROUND_SECONDS and track each
    DOCFLOW_TRACK_ROUND_SECONDS for up to ``seconds``, as the only tracker (waiting
    up to ``wait`` seconds for the one before to finish); returns the changes
    applied. Tracking rounds run while anything is on its way."""
    handover = min(HANDOVER_SECONDS, seconds / 5)
    continues = True
    tick = min(
        settings.DOCFLOW_CLOCK_ROUND_SECONDS, settings.DOCFLOW_TRACK_ROUND_SECONDS
    )
    applied = 0
    next_tracking = 0.0
    queued: dict = {}  # the clock's memory of first sends it queued
    conversions: dict = {}  # ... and of conversions
    with lease_held(name=TRACKER_LEASE, wait=wait) as lease:
        if not lease:
            return 0  # another tracker is at work
        # The run's length counts from taking the lease, not from standing by.
        deadline = time.monotonic() + seconds
        while True:
            try:
                clock_round(
                    queued=queued,
                    conversions=conversions,
                    settle_for=CLAIMS_SETTLED_HERE_SECONDS,
                )
            except Exception:
                # Tracking goes on; the next round (or the sweep) queues it all.
                logger.exception("A round of the clock failed")
            on_its_way = anything_on_its_way()
            if on_its_way and time.monotonic() >= next_tracking:
                applied += tracking_round()
                next_tracking = time.monotonic() + settings.DOCFLOW_TRACK_ROUND_SECONDS
            now = time.monotonic()
            if continues and now >= deadline - handover:
                # Queued now, it waits for this run's lease: no gap between runs.
                enqueue_on_commit(TRACK, seconds, 2 * handover)
                continues = False
            if now >= deadline or not lease:
                return applied  # done, or the lease was lost: another tracks
            time.sleep(tick)
