"""Reads over the audit trail."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import QuerySet

from audit.chain import GENESIS_HASH, access_log_digest, event_hash
from audit.models import AccessLog, AuditChainHead, AuditEvent
from audit.signing import SignedCheckpoint


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    checked: int
    broken_sequence: int | None = None
    problem: str = ""


def audit_events_for_target(
    *, target_type: str, target_id: str
) -> QuerySet[AuditEvent]:
    """Every audit event about one object, oldest first."""
    return AuditEvent.objects.filter(target_type=target_type, target_id=str(target_id))


def audit_chain_verify(
    *,
    batch_size: int = 5000,
    after_sequence: int = 0,
    after_hash: str = GENESIS_HASH,
    external: Sequence[SignedCheckpoint] = (),
) -> ChainVerdict:
    """:func:`audit_chain_verify_sealed` in one snapshot: on PostgreSQL, outside a
    transaction, the whole run reads one REPEATABLE READ snapshot, so what commits
    while it runs (events, seals, access-log rows) is neither seen half nor mistaken
    for tampering."""
    arguments = {
        "batch_size": batch_size,
        "after_sequence": after_sequence,
        "after_hash": after_hash,
        "external": external,
    }
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return audit_chain_verify_sealed(**arguments)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return audit_chain_verify_sealed(**arguments)


def audit_chain_verify_sealed(
    *,
    batch_size: int = 5000,
    after_sequence: int = 0,
    after_hash: str = GENESIS_HASH,
    external: Sequence[SignedCheckpoint] = (),
) -> ChainVerdict:
    """Recompute every hash in sequence order and hold the chain to every checkpoint
    (those recorded in it, and the signed ``external`` ones, which the caller has
    checked the signatures of); report the first sequence that disagrees.

    Only sealed events are chained; the unsealed ones wait for the sealer (see
    ``audit.sealing``) and an access-log row that one of them records is pending,
    not missing. How long they have waited is :func:`audit.sealing.audit_seal_lag`.

    A rewrite that recomputes the hashes and moves the head is consistent inside the
    database: only a checkpoint kept outside it tells, at the first checkpoint at or
    after the rewrite. Every access-log row must be the one its audit event digests.

    With ``after_sequence`` and ``after_hash`` (a checkpoint an earlier run verified)
    only the events after it are recomputed; the checkpoint event must still carry
    the hash it had then, and external checkpoints before it are looked up directly.
    """
    # Read the head before the events: writers commit an event and the head together,
    # so every event up to this head is visible to the scan, and events committed
    # while it runs are not mistaken for tampering.
    head = AuditChainHead.objects.filter(pk=1).first()
    head_sequence = head.sequence if head is not None else 0
    claims = _checkpoint_claims(external)
    if after_sequence:
        at_checkpoint = (
            AuditEvent.objects.filter(sequence=after_sequence)
            .values_list("hash", flat=True)
            .first()
        )
        if at_checkpoint != after_hash:
            return ChainVerdict(
                False, 0, after_sequence, "checkpoint event does not match its hash"
            )
        earlier = {seq: claim for seq, claim in claims.items() if seq <= after_sequence}
        stored = dict(
            AuditEvent.objects.filter(sequence__in=list(earlier)).values_list(
                "sequence", "hash"
            )
        )
        for seq in sorted(earlier):
            if stored.get(seq) != earlier[seq][0]:
                return ChainVerdict(False, 0, seq, earlier[seq][1])
    hash_at_head = after_hash if head_sequence == after_sequence else GENESIS_HASH
    expected_prev = after_hash
    expected_sequence = after_sequence + 1
    checked = 0
    access_refs: dict[int, tuple[int, str | None]] = {}
    # A full run reads every row, so one slipped in at sequence 0 or below (past
    # a dropped CHECK) shows up as the gap before sequence 1.
    scanned = AuditEvent.objects.filter(sequence__isnull=False)
    if after_sequence:
        scanned = scanned.filter(sequence__gt=after_sequence)
    rows: Iterator[tuple]
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        rows = _sealed_rows_read_ahead(after_sequence, batch_size)
    else:
        rows = (
            scanned.order_by("sequence")
            .values_list(*_HASHED_FIELDS, "hash")
            .iterator(chunk_size=batch_size)
        )
    for row in rows:
        (
            sequence,
            occurred_at,
            kind,
            actor_id,
            label,
            action,
            ttype,
            tid,
            data,
            prev,
        ) = row[:-1]
        stored_hash = row[-1]
        if sequence != expected_sequence:
            return ChainVerdict(
                False,
                checked,
                expected_sequence,
                f"sequence gap: expected {expected_sequence}, found {sequence}",
            )
        if prev != expected_prev:
            return ChainVerdict(
                False, checked, sequence, "previous hash does not match"
            )
        recomputed = event_hash(
            sequence=sequence,
            occurred_at=occurred_at,
            actor_kind=kind,
            actor_id=actor_id,
            actor_label=label,
            action=action,
            target_type=ttype,
            target_id=tid,
            data=data,
            prev_hash=prev,
        )
        if recomputed != stored_hash:
            return ChainVerdict(
                False, checked, sequence, "content does not match its hash"
            )
        claim = claims.get(sequence)
        if claim is not None and claim[0] != stored_hash:
            return ChainVerdict(False, checked, sequence, claim[1])
        if action.startswith("content.") and "access_log_id" in data:
            access_refs[data["access_log_id"]] = (
                sequence,
                data.get("access_log_digest"),
            )
        if sequence == head_sequence:
            hash_at_head = stored_hash
        expected_prev = stored_hash
        expected_sequence += 1
        checked += 1
    last_sequence = after_sequence + checked
    beyond = [seq for seq in claims if seq > last_sequence]
    if beyond:
        newest = max(beyond)
        return ChainVerdict(
            False,
            checked,
            last_sequence + 1,
            f"events are missing: a checkpoint covers the chain to sequence {newest}",
        )
    if head is None:
        if last_sequence:
            return ChainVerdict(
                False, checked, last_sequence + 1, "chain head is missing"
            )
        return _access_log_verdict(access_refs, checked, full=not after_sequence)
    if last_sequence < head_sequence:
        # Events were removed from the end of the chain.
        return ChainVerdict(
            False, checked, last_sequence + 1, "chain head points past the last event"
        )
    if hash_at_head != head.last_hash:
        return ChainVerdict(
            False, checked, head_sequence, "chain head does not match its event"
        )
    # Every writer moves the head in the same transaction as its event, so by now
    # the head covers every event the scan saw.
    head_now = AuditChainHead.objects.filter(pk=1).first()
    head_now_sequence = head_now.sequence if head_now is not None else 0
    if head_now_sequence < last_sequence:
        return ChainVerdict(
            False, checked, head_now_sequence + 1, "events follow the chain head"
        )
    return _access_log_verdict(access_refs, checked, full=not after_sequence)


def _sealed_rows_read_ahead(after_sequence: int, batch_size: int) -> Iterator[tuple]:
    """The sealed events after ``after_sequence`` in sequence order, as
    :data:`_HASHED_FIELDS` + hash tuples, from a server-side cursor in the caller's
    transaction (its snapshot). A thread fetches the next batch while the caller
    hashes this one: the database's work and the hashing overlap (the thread waits
    on the socket with the GIL released)."""
    columns = ", ".join(f'"{name}"' for name in (*_HASHED_FIELDS, "hash"))
    raw = connection.connection  # the psycopg connection of this transaction
    cursor = raw.cursor(name=f"audit_verify_{id(raw):x}")
    cursor.itersize = batch_size
    # From the start, every sealed row: one slipped in at sequence 0 or below (past
    # a dropped CHECK) must show up as the gap before sequence 1.
    after = "AND sequence > %s " if after_sequence else ""
    cursor.execute(
        f"SELECT {columns} FROM audit_auditevent "  # noqa: S608 - fixed text
        f"WHERE sequence IS NOT NULL {after}ORDER BY sequence",
        [after_sequence] if after_sequence else [],
    )
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(batch_size)
                batches.put(batch)
                if not batch:
                    return
        except BaseException as error:  # handed to the reading thread
            batches.put(error)

    reader = threading.Thread(target=fetch, name="audit-verify-read-ahead")
    reader.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, BaseException):
                raise batch
            if not batch:
                return
            for row in batch:
                data = row[8]
                if type(data) is str:
                    row = (*row[:8], json.loads(data), *row[9:])
                yield row
    finally:
        # A caller that stops early (a broken chain) stops the reader and waits
        # for it: the connection is the caller's again when this returns.
        stop.set()
        while reader.is_alive():
            try:
                batches.get(timeout=0.1)
            except queue.Empty:
                continue
        reader.join()
        cursor.close()


_HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "data",
    "prev_hash",
)


def _checkpoint_claims(
    external: Sequence[SignedCheckpoint],
) -> dict[int, tuple[str, str]]:
    """Sequence -> (hash it must have, what to say when it does not): the signed
    external checkpoints first, then the checkpoints recorded in the chain."""
    claims: dict[int, tuple[str, str]] = {}
    recorded = AuditEvent.objects.filter(action=CHECKPOINT_ACTION).values_list(
        "sequence", "data"
    )
    for sequence, data in recorded:
        through = data.get("through_sequence")
        if data.get("ok") and through:
            claims[through] = (
                data.get("through_hash", ""),
                f"differs from the checkpoint recorded at sequence {sequence}",
            )
    for checkpoint in external:
        claims[checkpoint.sequence] = (
            checkpoint.hash,
            "differs from the external checkpoint signed at "
            f"{checkpoint.signed_at} (key {checkpoint.key_id})",
        )
    return claims


def _access_log_verdict(
    refs: dict[int, tuple[int, str | None]], checked: int, *, full: bool
) -> ChainVerdict:
    """Every access-log row the chain names exists unchanged; on a full run, every
    row is named by the chain."""
    seen: set[int] = set()
    pending = _access_log_pending() if full else set()
    wanted = AccessLog.objects.order_by("pk")
    if not full:
        wanted = wanted.filter(pk__in=list(refs))
    for row in wanted.values_list(
        "pk",
        "occurred_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "channel",
        "action",
        "target_type",
        "target_id",
        "reason",
    ).iterator(chunk_size=5000):
        pk = row[0]
        seen.add(pk)
        ref = refs.get(pk)
        if ref is None and pk in pending:
            continue  # its event waits for the sealer
        if ref is None:
            return ChainVerdict(
                False, checked, None, f"access log row {pk} is in no audit event"
            )
        sequence, digest = ref
        if digest is None:
            continue  # chained before rows carried a digest: existence only
        fields = dict(
            zip(
                (
                    "occurred_at",
                    "actor_kind",
                    "actor_id",
                    "actor_label",
                    "channel",
                    "action",
                    "target_type",
                    "target_id",
                    "reason",
                ),
                row[1:],
                strict=True,
            )
        )
        if access_log_digest(entry_id=pk, **fields) != digest:
            return ChainVerdict(
                False,
                checked,
                sequence,
                f"access log row {pk} does not match the event that records it",
            )
    missing = sorted(set(refs) - seen)
    if missing:
        sequence = min(refs[pk][0] for pk in missing)
        return ChainVerdict(
            False,
            checked,
            sequence,
            f"access log row {_refs_pk(refs, sequence)} recorded here is missing",
        )
    return ChainVerdict(True, checked)


def _access_log_pending() -> set[int]:
    """Access-log rows recorded by events that wait for the sealer."""
    waiting = AuditEvent.objects.filter(
        sequence__isnull=True, action__startswith="content."
    ).values_list("data", flat=True)
    return {data["access_log_id"] for data in waiting if "access_log_id" in data}


def _refs_pk(refs: dict[int, tuple[int, str | None]], sequence: int) -> int:
    return next(pk for pk, (seq, _) in refs.items() if seq == sequence)


CHECKPOINT_ACTION = "audit.chain_verified"
CHECKPOINT_TARGET = ("audit_chain", "chain")


def audit_chain_last_checkpoint(*, ok_only: bool = False) -> AuditEvent | None:
    """The newest recorded verification of the chain (optionally a passing one)."""
    target_type, target_id = CHECKPOINT_TARGET
    events = audit_events_for_target(target_type=target_type, target_id=target_id)
    events = events.filter(action=CHECKPOINT_ACTION)
    if ok_only:
        events = events.filter(data__ok=True)
    return events.order_by("-sequence").first()


@dataclass(frozen=True)
class ChainStatus:
    """What the IG admin shows about the chain, without reading all of it."""

    checkpoint: AuditEvent | None
    head_sequence: int
    unverified: int  # events after the checkpoint
    verdict: ChainVerdict | None  # of those events; None when too many to check now

    @property
    def ok(self) -> bool | None:
        if self.checkpoint is not None and not self.checkpoint.data.get("ok"):
            return False
        if self.verdict is None:
            return None
        return self.verdict.ok


def audit_chain_status(*, max_unverified: int = 10000) -> ChainStatus:
    """The last scheduled verification, plus the events since it if they are few.

    Verifying from the last passing checkpoint keeps the cost proportional to what
    was written since; a full re-verification is the scheduled command's job.
    """
    head = AuditChainHead.objects.filter(pk=1).first()
    head_sequence = head.sequence if head is not None else 0
    latest = audit_chain_last_checkpoint()
    if latest is not None and not latest.data.get("ok"):
        return ChainStatus(latest, head_sequence, 0, None)
    after_sequence = latest.data["through_sequence"] if latest is not None else 0
    after_hash = latest.data["through_hash"] if latest is not None else GENESIS_HASH
    unverified = max(head_sequence - after_sequence, 0)
    if unverified > max_unverified:
        return ChainStatus(latest, head_sequence, unverified, None)
    verdict = audit_chain_verify(after_sequence=after_sequence, after_hash=after_hash)
    return ChainStatus(latest, head_sequence, unverified, verdict)
