"""Claims under a lease: a document in ``sending`` is its worker's only while the
worker is alive to say so.

A claim (``ready`` -> ``sending``, see ``sending``) sets its transmission's
``lease_expires_at`` DOCFLOW_SEND_LEASE_SECONDS ahead. While the worker posts, a
heartbeat thread in the worker renews the lease every third of that, so a POST
slower than the lease (the client's timeouts bound each phase of a request, not the
whole of it) never loses its claim, and a batch's claims waiting their turn keep
theirs. A worker that dies (SIGKILL, the task timeout, a lost node) stops renewing:
within one lease its claims expire and the clock (``clock``) has them settled by
idempotency key (``reconciling.sending_claim_settle``): found at Connect ->
received, absent -> back to ``ready`` and sent again under the same key, Connect
unreachable -> ``outcome_unknown``. MESH claims carry the same lease, renewed
while the upload runs; an expired one goes to ``outcome_unknown`` (a dead worker
uploads nothing more), settled by tracking the message's local id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from docflow.models import DocumentStatus
from transmissions.models import Transmission, TransmissionState

logger = logging.getLogger(__name__)


def lease_expiry(*, now: datetime | None = None) -> datetime:
    """When a claim taken (or renewed) now expires."""
    return (now or timezone.now()) + timedelta(
        seconds=settings.DOCFLOW_SEND_LEASE_SECONDS
    )


def transmission_leases_renew(*, transmission_ids: Iterable[int]) -> int:
    """Extend the leases of claims still held (pending, with a lease); returns how
    many were renewed. A claim already settled or released is left alone."""
    return Transmission.objects.filter(
        pk__in=list(transmission_ids),
        state=TransmissionState.PENDING,
        lease_expires_at__isnull=False,
        document__status=DocumentStatus.SENDING,
    ).update(lease_expires_at=lease_expiry())


@contextmanager
def claims_kept(transmission_ids: Iterable[int]) -> Iterator[None]:
    """Renew the leases of these claims every third of a lease while the block
    runs (the posts), from a thread of this worker: alive, it keeps them; dead, it
    cannot. The thread's database connection is closed when it stops."""
    ids = list(transmission_ids)
    if not ids:
        yield
        return
    every = settings.DOCFLOW_SEND_LEASE_SECONDS / 3
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(every):
                try:
                    transmission_leases_renew(transmission_ids=ids)
                except Exception:  # the next beat tries again; the lease says why
                    logger.exception("Could not renew send leases")
        finally:
            connection.close()

    beat = threading.Thread(target=renew, name="send-lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()


def claims_expired(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of the pending transmissions of documents in ``sending`` whose claim's
    lease has expired: their worker is dead (or stopped renewing), oldest first."""
    return list(
        Transmission.objects.filter(
            state=TransmissionState.PENDING,
            lease_expires_at__lt=now or timezone.now(),
            document__status=DocumentStatus.SENDING,
        )
        .order_by("lease_expires_at")
        .values_list("pk", flat=True)[:limit]
    )
