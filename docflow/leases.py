"""Leases on singleton jobs: at most one run at a time on any number of nodes, and
another node takes over soon after the holder dies.

A lease is a row (``docflow.Lease``) with a holder token and an expiry, taken by
compare-and-set, so it works the same on SQLite and PostgreSQL and two takers never
both win. While the job runs, a heartbeat thread of the holder renews it every
third of its length (``DOCFLOW_LEASE_SECONDS``, 15 s by default): a live holder
keeps it however long the job takes; a dead one (SIGKILL, a lost node) stops
renewing, and the lease runs out at most one length after its last renewal. A
waiting run (``wait``) polls every ``DOCFLOW_LEASE_POLL_SECONDS`` and takes it
then, so a standby takes over within a lease length and a poll of the death.

A holder whose heartbeat cannot renew (its row was taken over after it stalled
for longer than a lease) sees ``HeldLease.lost`` set and must stop; loops check
it each round. Expiry is written from each node's clock: nodes keep time (NTP)
to well within a lease length.

Every take, skip, end and loss is sent as a signal (``lease_taken`` and the rest)
for whoever counts them; skips are logged at info, losses as errors.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from docflow.models import Lease

logger = logging.getLogger(__name__)

# Sent with ``name`` and ``token`` (and ``node`` on a take): taken, then the job
# runs; ending, as the job is done and just before the lease is given back (so a
# receiver's record of the run ends while it still holds it); skipped, when another
# run held it; lost, when the heartbeat found it another run's.
lease_taken = Signal()
lease_ending = Signal()
lease_skipped = Signal()
lease_lost = Signal()


def node_name() -> str:
    """This node: DOCFLOW_NODE_NAME, else the host's name."""
    return settings.DOCFLOW_NODE_NAME or socket.gethostname()


def lease_node() -> str:
    """This process, as operators see it on a lease: ``node:pid``."""
    return f"{node_name()}:{os.getpid()}"[:128]


def _seconds(seconds: float | None) -> float:
    return settings.DOCFLOW_LEASE_SECONDS if seconds is None else seconds


def lease_take(
    *, name: str, seconds: float | None = None, now: datetime | None = None
) -> str | None:
    """Take the lease on ``name`` for ``seconds`` when nobody holds a live one;
    returns the holder token, or None when another run holds it (compare-and-set:
    two takers never both win)."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    fields = {
        "holder": token,
        "node": lease_node(),
        "taken_at": now,
        "expires_at": now + timedelta(seconds=_seconds(seconds)),
    }
    # Free: given back (no holder) or run out.
    if Lease.objects.filter(Q(holder="") | Q(expires_at__lte=now), name=name).update(
        **fields
    ):
        return token
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, **fields)
    except IntegrityError:
        return None  # it exists and is live
    return token


def lease_renew(*, name: str, token: str, seconds: float | None = None) -> bool:
    """Push the expiry of a lease still held by ``token`` on by ``seconds``; False
    when it is no longer this holder's (it ran out and another run took it)."""
    return bool(
        Lease.objects.filter(name=name, holder=token).update(
            expires_at=timezone.now() + timedelta(seconds=_seconds(seconds))
        )
    )


def lease_release(*, name: str, token: str) -> bool:
    """Give the lease back (only its holder can); False when it had run out and
    another run took it."""
    return bool(
        Lease.objects.filter(name=name, holder=token).update(
            holder="", node="", expires_at=timezone.now()
        )
    )


def lease_is_held(*, name: str, now: datetime | None = None) -> bool:
    """Whether a live holder has the lease on ``name`` now."""
    return (
        Lease.objects.filter(name=name, expires_at__gt=now or timezone.now())
        .exclude(holder="")
        .exists()
    )


def leases_held_by_name(*, now: datetime | None = None) -> dict[str, bool]:
    """Every lease ever taken, by name: whether a live holder has it now."""
    now = now or timezone.now()
    return {
        name: bool(holder) and expires_at > now
        for name, holder, expires_at in Lease.objects.values_list(
            "name", "holder", "expires_at"
        )
    }


@dataclass
class HeldLease:
    """The outcome of ``lease_held``: true while this run holds the lease. ``lost``
    is set when the heartbeat found it taken by another run: stop at once."""

    name: str
    token: str | None
    lost: threading.Event = field(default_factory=threading.Event)

    def __bool__(self) -> bool:
        return self.token is not None and not self.lost.is_set()


def _taken_by_another(*, name: str, token: str) -> bool:
    return Lease.objects.filter(name=name).exclude(holder=token).exists()


def _heartbeat(lease: HeldLease, seconds: float, stop: threading.Event) -> None:
    """Renew every third of a lease until ``stop``. A renewal that fails (the
    database unreachable a moment) or finds no row (the taker's transaction has not
    committed yet) is tried again on the next beat; one that finds the row another
    run's marks the lease lost."""
    try:
        while not stop.wait(seconds / 3):
            try:
                if lease_renew(name=lease.name, token=lease.token, seconds=seconds):
                    continue
                if not _taken_by_another(name=lease.name, token=lease.token):
                    continue
            except Exception:
                logger.warning("Could not renew the lease on %s", lease.name)
                continue
            logger.error("Lost the lease on %s: another run holds it", lease.name)
            lease.lost.set()
            lease_lost.send(sender=HeldLease, name=lease.name, token=lease.token)
            return
    finally:
        connection.close()


def _take_waiting(*, name: str, seconds: float, wait: float) -> str | None:
    deadline = time.monotonic() + wait
    token = lease_take(name=name, seconds=seconds)
    while token is None and time.monotonic() < deadline:
        time.sleep(min(settings.DOCFLOW_LEASE_POLL_SECONDS, wait))
        token = lease_take(name=name, seconds=seconds)
    return token


@contextmanager
def lease_held(
    *, name: str, seconds: float | None = None, wait: float = 0.0
) -> Iterator[HeldLease]:
    """The lease on ``name`` for the block, waiting up to ``wait`` seconds for it,
    renewed by a heartbeat thread while the block runs and given back after it.
    The HeldLease is false when another run holds it: do nothing and return."""
    seconds = _seconds(seconds)
    token = _take_waiting(name=name, seconds=seconds, wait=wait)
    lease = HeldLease(name=name, token=token)
    if token is None:
        logger.info("%s: skipped, another run holds the lease", name)
        lease_skipped.send(sender=HeldLease, name=name, token=None)
        yield lease
        return
    logger.debug("%s: lease taken", name)
    lease_taken.send(sender=HeldLease, name=name, token=token, node=lease_node())
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(lease, seconds, stop),
        name=f"lease {name}",
        daemon=True,
    )
    beat.start()
    try:
        yield lease
    finally:
        stop.set()
        beat.join()
        if not lease.lost.is_set():
            lease_ending.send(sender=HeldLease, name=name, token=token)
            lease_release(name=name, token=token)


def singleton(name: str, *, seconds: float | None = None):
    """Decorate a scheduled job so that it runs only under the lease on ``name``;
    a run that finds the lease held returns None without running."""

    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            with lease_held(name=name, seconds=seconds) as lease:
                if not lease:
                    return None
                return function(*args, **kwargs)

        return run

    return decorate
