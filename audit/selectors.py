"""Reads over the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import QuerySet

from audit.chain import GENESIS_HASH, event_hash
from audit.models import AuditChainHead, AuditEvent


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
) -> ChainVerdict:
    """Recompute every hash in sequence order; stop at the first broken link.

    With ``after_sequence`` and ``after_hash`` (a checkpoint an earlier run verified)
    only the events after it are recomputed; the checkpoint event must still carry
    the hash it had then.
    """
    # Read the head before the events: writers commit an event and the head together,
    # so every event up to this head is visible to the scan, and events committed
    # while it runs are not mistaken for tampering.
    head = AuditChainHead.objects.filter(pk=1).first()
    head_sequence = head.sequence if head is not None else 0
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
    hash_at_head = after_hash if head_sequence == after_sequence else GENESIS_HASH
    expected_prev = after_hash
    expected_sequence = after_sequence + 1
    checked = 0
    events: Iterator[AuditEvent] = (
        AuditEvent.objects.filter(sequence__gt=after_sequence)
        .order_by("sequence")
        .iterator(chunk_size=batch_size)
    )
    for event in events:
        if event.sequence != expected_sequence:
            return ChainVerdict(
                False,
                checked,
                expected_sequence,
                f"sequence gap: expected {expected_sequence}, found {event.sequence}",
            )
        if event.prev_hash != expected_prev:
            return ChainVerdict(
                False, checked, event.sequence, "previous hash does not match"
            )
        recomputed = event_hash(
            sequence=event.sequence,
            occurred_at=event.occurred_at,
            actor_kind=event.actor_kind,
            actor_id=event.actor_id,
            actor_label=event.actor_label,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            data=event.data,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return ChainVerdict(
                False, checked, event.sequence, "content does not match its hash"
            )
        if event.sequence == head_sequence:
            hash_at_head = event.hash
        expected_prev = event.hash
        expected_sequence += 1
        checked += 1
    last_sequence = after_sequence + checked
    if head is None:
        if last_sequence:
            return ChainVerdict(
                False, checked, last_sequence + 1, "chain head is missing"
            )
        return ChainVerdict(True, checked)
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
    return ChainVerdict(True, checked)


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
