"""Leases on singleton jobs: at most one run at a time, whichever worker runs it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from operations.models import Lease


def lease_take(*, name: str, seconds: int, now=None) -> str | None:
    """Take the lease on ``name`` for ``seconds`` when nobody holds a live one;
    returns the holder token, or None when another run holds it (compare-and-set:
    two takers never both win)."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    # Free: given back (no holder) or run out.
    taken = Lease.objects.filter(
        Q(holder="") | Q(expires_at__lte=now), name=name
    ).update(holder=token, expires_at=now + timedelta(seconds=seconds))
    if taken:
        return token
    try:
        with transaction.atomic():
            Lease.objects.create(
                name=name, holder=token, expires_at=now + timedelta(seconds=seconds)
            )
    except IntegrityError:
        return None  # it exists and is live
    return token


def lease_release(*, name: str, token: str) -> bool:
    """Give the lease back (only its holder can); False when it had run out and
    another run took it."""
    return bool(
        Lease.objects.filter(name=name, holder=token).update(
            holder="", expires_at=timezone.now()
        )
    )


@contextmanager
def lease_held(*, name: str, seconds: int) -> Iterator[str | None]:
    """The lease for the block (None: another run holds it, do nothing), given back
    after it."""
    token = lease_take(name=name, seconds=seconds)
    try:
        yield token
    finally:
        if token is not None:
            lease_release(name=name, token=token)
