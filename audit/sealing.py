"""The sealer: chains the audit events that writers left unsealed.

Writers insert events unsealed in their own transaction (no chain position, no
lock), so audited writes on different nodes never wait for each other. The sealer
alone extends the chain: it locks the chain head (the only lock on the chain, held
for one batch), reads the unsealed events that are *visible*, that is committed,
in id order, gives them the next sequences, the previous hash and their own hash,
and moves the head, all in one transaction.

Commit order against id order: an event with a lower id whose transaction commits
later is simply not visible yet, and is sealed in a later batch with a higher
sequence. The chain's order is the order events became visible to the sealer;
nothing is skipped, and no sequence is given out before its event is committed, so
the chain has no gaps and never waits for an in-flight transaction. (Ids are not
chain positions: ``occurred_at`` and ``id`` are hashed or kept, ``sequence`` is the
chain.)

One sealer runs at a time: it takes the head row ``FOR UPDATE SKIP LOCKED``, so a
second one finds nothing to do and returns. Until it is sealed an event is not
tamper-evident; ``audit_seal_lag`` says how many wait and for how long, the metrics
and readiness report it, and ``audit_verify`` fails when one has waited longer than
``AUDIT_SEAL_MAX_LAG_SECONDS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from audit.chain import GENESIS_HASH, event_hash
from audit.models import AuditChainHead, AuditEvent

SEAL_BATCH = 5000

_UNSEALED_FIELDS = (
    "id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "data",
)

_SEAL_SQL = """
UPDATE audit_auditevent AS e
SET sequence = v.sequence, prev_hash = v.prev_hash, hash = v.hash
FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[])
    AS v(id, sequence, prev_hash, hash)
WHERE e.id = v.id AND e.sequence IS NULL
"""


def sealing_mode() -> str:
    """``deferred`` (writers insert unsealed; the sealer chains) or ``inline`` (each
    writer chains under the head lock). ``AUDIT_SEALING`` chooses; by default
    deferred on PostgreSQL and inline elsewhere (SQLite serialises writes anyway)."""
    mode = getattr(settings, "AUDIT_SEALING", "") or ""
    if mode:
        return mode
    return "deferred" if connection.vendor == "postgresql" else "inline"


def chain_head_for_update(*, skip_locked: bool = False) -> AuditChainHead | None:
    """The chain head, locked until commit (created on first use). With
    ``skip_locked``, None when someone else holds it."""
    skip = skip_locked and connection.features.has_select_for_update_skip_locked
    head = AuditChainHead.objects.select_for_update(skip_locked=skip).filter(pk=1)
    found = head.first()
    if found is None and not AuditChainHead.objects.filter(pk=1).exists():
        AuditChainHead.objects.get_or_create(
            pk=1, defaults={"sequence": 0, "last_hash": GENESIS_HASH}
        )
        found = head.first()
    return found


def audit_seal_pending(*, batch_size: int = SEAL_BATCH, wait: bool = False) -> int:
    """Seal every unsealed event committed so far, in batches of ``batch_size``;
    return how many were sealed. Without ``wait`` it returns 0 at once when another
    sealer holds the head; with it, it waits for that one and then seals the rest."""
    total = 0
    while True:
        sealed = _seal_batch(batch_size, wait=wait)
        if sealed is None:
            return total
        total += sealed
        if sealed < batch_size:
            return total


@transaction.atomic
def _seal_batch(batch_size: int, *, wait: bool) -> int | None:
    head = chain_head_for_update(skip_locked=not wait)
    if head is None:
        return None
    rows = list(
        AuditEvent.objects.filter(sequence__isnull=True)
        .order_by("id")
        .values_list(*_UNSEALED_FIELDS)[:batch_size]
    )
    if not rows:
        return 0
    sequence, prev_hash = head.sequence, head.last_hash
    ids, sequences, prevs, hashes = [], [], [], []
    for pk, occurred_at, kind, actor_id, label, action, ttype, tid, data in rows:
        sequence += 1
        ids.append(pk)
        sequences.append(sequence)
        prevs.append(prev_hash)
        prev_hash = event_hash(
            sequence=sequence,
            occurred_at=occurred_at,
            actor_kind=kind,
            actor_id=actor_id,
            actor_label=label,
            action=action,
            target_type=ttype,
            target_id=tid,
            data=data,
            prev_hash=prev_hash,
        )
        hashes.append(prev_hash)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_SEAL_SQL, [ids, sequences, prevs, hashes])
            updated = cursor.rowcount
        else:
            updated = 0
            for values in zip(sequences, prevs, hashes, ids, strict=True):
                cursor.execute(
                    "UPDATE audit_auditevent SET sequence = %s, prev_hash = %s, "
                    "hash = %s WHERE id = %s AND sequence IS NULL",
                    values,
                )
                updated += cursor.rowcount
    if updated != len(ids):
        raise RuntimeError(f"sealed {updated} of {len(ids)} audit events")
    head.sequence, head.last_hash = sequence, prev_hash
    head.save(update_fields=["sequence", "last_hash"])
    return len(ids)


def audit_sealer_run(
    *,
    interval: float = 1.0,
    stop_after: float | None = None,
    batch_size: int = SEAL_BATCH,
) -> int:
    """Seal in a loop, every ``interval`` seconds (at once again after a full
    batch), until ``stop_after`` seconds have passed (None: for ever); return how
    many were sealed. A second sealer running beside it seals nothing."""
    started = time.monotonic()
    total = 0
    while stop_after is None or time.monotonic() - started < stop_after:
        sealed = audit_seal_pending(batch_size=batch_size)
        total += sealed
        connection.close_if_unusable_or_obsolete()
        if sealed < batch_size:
            time.sleep(interval)
    return total


@dataclass(frozen=True)
class SealLag:
    """The events waiting for the sealer: how many and since when."""

    pending: int
    oldest_at: datetime | None

    @property
    def oldest_age_seconds(self) -> float:
        if self.oldest_at is None:
            return 0.0
        return max((timezone.now() - self.oldest_at).total_seconds(), 0.0)


def audit_seal_lag() -> SealLag:
    """How many committed events wait unsealed, and the oldest one's time (read
    through the partial index of unsealed events)."""
    waiting = AuditEvent.objects.filter(sequence__isnull=True)
    found = waiting.aggregate(oldest=Min("occurred_at"))
    return SealLag(waiting.count(), found["oldest"])


def seal_max_lag_seconds() -> float:
    """How long an event may wait unsealed before verification fails."""
    return float(getattr(settings, "AUDIT_SEAL_MAX_LAG_SECONDS", 60))
