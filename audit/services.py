"""Writes to the audit trail and the access log."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actors import actor_for
from audit.chain import GENESIS_HASH, event_hash
from audit.models import AccessLog, AuditChainHead, AuditEvent


def _chain_head_for_update() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        head, _ = AuditChainHead.objects.get_or_create(
            pk=1, defaults={"sequence": 0, "last_hash": GENESIS_HASH}
        )
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


# No savepoint when nested: an event that fails must fail the caller's whole change
# anyway, and SAVEPOINT/RELEASE would add two round trips, one inside the chain lock.
@transaction.atomic(savepoint=False)
def audit_record(
    *,
    action: str,
    target_type: str,
    target_id: str,
    data: dict[str, Any] | None = None,
    actor: Any = None,
) -> AuditEvent:
    """Chain one event in the caller's transaction, holding the head lock."""
    who = actor_for(actor)
    head = _chain_head_for_update()
    sequence = head.sequence + 1
    occurred_at = timezone.now()
    payload = data or {}
    digest = event_hash(
        sequence=sequence,
        occurred_at=occurred_at,
        actor_kind=who.kind,
        actor_id=who.identifier,
        actor_label=who.label,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        data=payload,
        prev_hash=head.last_hash,
    )
    event = AuditEvent.objects.create(
        sequence=sequence,
        occurred_at=occurred_at,
        actor_kind=who.kind,
        actor_id=who.identifier,
        actor_label=who.label,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        data=payload,
        prev_hash=head.last_hash,
        hash=digest,
    )
    head.sequence = sequence
    head.last_hash = digest
    head.save(update_fields=["sequence", "last_hash"])
    return event


@transaction.atomic
def access_log_record(
    *,
    actor: Any,
    channel: str,
    action: str,
    target_type: str,
    target_id: str,
    reason: str,
) -> AccessLog:
    """Record one look at patient content, and chain a reference to it in the audit."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("A reason is required to access patient content.")
    who = actor_for(actor)
    entry = AccessLog.objects.create(
        occurred_at=timezone.now(),
        actor_kind=who.kind,
        actor_id=who.identifier,
        actor_label=who.label,
        channel=channel,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        reason=reason,
    )
    audit_record(
        action=f"content.{action}",
        target_type=target_type,
        target_id=str(target_id),
        data={"access_log_id": entry.pk, "channel": channel},
        actor=who,
    )
    return entry
