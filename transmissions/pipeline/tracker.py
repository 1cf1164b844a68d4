"""The tracker: one loop, on one worker at a time, that applies the channels'
statuses (each channel's ``tracking_round``) while anything is on its way, and
keeps the clock (``clock``): each second it queues retries, circuit trials and the
settling of expired claims as they come due.

Each run is a django-q2 task of at most ``seconds`` (inside the task timeout). On
PostgreSQL a session advisory lock makes it the only tracker, and a run queues its
successor shortly before it ends; the successor waits for the lock, so tracking
and the clock go on without a gap, idle or not (idle, a round is a few indexed
queries). A run killed with its cluster frees the lock with its connection; the
minute schedule starts the next. Elsewhere (SQLite in development) runs neither
exclude nor continue each other: the minute schedule starts them, and a run with
nothing on its way ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

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
# Any constant will do: it names "the tracker" among PostgreSQL advisory locks.
TRACKER_LOCK = 0x646F63666C6F77  # "docflow"
# A run queues its successor this long before it ends (at most a fifth of the
# run): time for the successor to come up through the queue.
HANDOVER_SECONDS = 10.0
LEASE_POLL_SECONDS = 0.2
# Expired claims are settled in the loop itself for up to this long a round (a
# look-up by key each), the rest by tasks.
CLAIMS_SETTLED_HERE_SECONDS = 2.0


def _lease_try() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [TRACKER_LOCK])
        return cursor.fetchone()[0]


@contextmanager
def tracker_lease(*, wait: float = 0.0) -> Iterator[bool]:
    """Whether this process may track now, waiting up to ``wait`` seconds: one
    tracker at a time, by a session-level PostgreSQL advisory lock that dies with
    its connection (a killed worker frees it). Without PostgreSQL: always."""
    if connection.vendor != "postgresql":
        yield True
        return
    deadline = time.monotonic() + wait
    held = _lease_try()
    while not held and time.monotonic() < deadline:
        time.sleep(LEASE_POLL_SECONDS)
        held = _lease_try()
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [TRACKER_LOCK])


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
    deadline = time.monotonic() + seconds
    handover = min(HANDOVER_SECONDS, seconds / 5)
    continues = connection.vendor == "postgresql"
    tick = min(
        settings.DOCFLOW_CLOCK_ROUND_SECONDS, settings.DOCFLOW_TRACK_ROUND_SECONDS
    )
    applied = 0
    next_tracking = 0.0
    queued: dict = {}  # the clock's memory of first sends it queued
    conversions: dict = {}  # ... and of conversions
    with tracker_lease(wait=wait) as held:
        if not held:
            return 0  # another tracker is at work
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
            if not on_its_way and connection.vendor != "postgresql":
                return applied
            now = time.monotonic()
            if continues and now >= deadline - handover:
                # Queued now, it waits for this run's lease: no gap between runs.
                enqueue_on_commit(TRACK, seconds, 2 * handover)
                continues = False
            if now >= deadline:
                return applied
            time.sleep(tick)
