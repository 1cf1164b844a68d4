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


def audit_chain_verify(*, batch_size: int = 5000) -> ChainVerdict:
    """Recompute every hash in sequence order; stop at the first broken link."""
    # Read the head before the events: writers commit an event and the head together,
    # so every event up to this head is visible to the scan, and events committed
    # while it runs are not mistaken for tampering.
    head = AuditChainHead.objects.filter(pk=1).first()
    head_sequence = head.sequence if head is not None else 0
    hash_at_head = GENESIS_HASH
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    events: Iterator[AuditEvent] = AuditEvent.objects.order_by("sequence").iterator(
        chunk_size=batch_size
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
    if head is None:
        if checked:
            return ChainVerdict(False, checked, checked + 1, "chain head is missing")
        return ChainVerdict(True, checked)
    if checked < head_sequence:
        # Events were removed from the end of the chain.
        return ChainVerdict(
            False, checked, checked + 1, "chain head points past the last event"
        )
    if hash_at_head != head.last_hash:
        return ChainVerdict(
            False, checked, head_sequence, "chain head does not match its event"
        )
    # Every writer moves the head in the same transaction as its event, so by now
    # the head covers every event the scan saw.
    head_now = AuditChainHead.objects.filter(pk=1).first()
    head_now_sequence = head_now.sequence if head_now is not None else 0
    if head_now_sequence < checked:
        return ChainVerdict(
            False, checked, head_now_sequence + 1, "events follow the chain head"
        )
    return ChainVerdict(True, checked)
