"""Writes to the audit trail and the access log."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actors import actor_for
from audit.chain import GENESIS_HASH, EventHasher, access_log_digest
from audit.models import AccessLog, AuditEvent
from audit.redaction import pseudonymise_nhs_numbers
from audit.sealing import audit_seal_pending, chain_head_for_update, sealing_mode
from audit.selectors import (
    CHECKPOINT_ACTION,
    CHECKPOINT_TARGET,
    ChainVerdict,
    audit_chain_last_checkpoint,
    audit_chain_verify,
)
from audit.signing import (
    CheckpointSignatureError,
    SignedCheckpoint,
    checkpoint_publish,
    checkpoint_sign,
    checkpoints_trusted,
    signing_key,
)


@dataclass(frozen=True)
class EventSpec:
    """One event to chain: what :func:`audit_record` takes, as a value."""

    action: str
    target_type: str
    target_id: str
    data: dict[str, Any] | None = None
    actor: Any = None


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
    """Record one event in the caller's transaction: unsealed, for the sealer to
    chain (deferred mode), or chained at once under the head lock (inline)."""
    [event] = audit_record_many(
        [EventSpec(action, target_type, str(target_id), data, actor)]
    )
    return event


@transaction.atomic(savepoint=False)
def audit_record_many(specs: Sequence[EventSpec]) -> list[AuditEvent]:
    """Record several events, in order, in the caller's transaction, inserted in one
    statement. Deferred mode (PostgreSQL's default): unsealed, no lock; the sealer
    chains them in id order once they are committed. Inline mode: the head is
    locked once and the events chained at once, so a batch holds the chain for three
    statements, not three per event."""
    if not specs:
        return []
    # Everything that does not depend on the chain is made before its lock is
    # taken: the lock is held until commit, and every inline writer waits for it.
    deferred = sealing_mode() == "deferred"
    occurred_at = timezone.now()
    actors: dict[int, Any] = {}
    events: list[AuditEvent] = []
    hashers: list[EventHasher] = []
    for spec in specs:
        key = id(spec.actor)
        if key not in actors:
            actors[key] = actor_for(spec.actor)
        who = actors[key]
        event = AuditEvent(
            actor_kind=who.kind,
            actor_id=who.identifier,
            actor_label=who.label,
            action=spec.action,
            target_type=spec.target_type,
            target_id=str(spec.target_id),
            data=spec.data or {},
            occurred_at=occurred_at,
        )
        events.append(event)
        if deferred:
            continue
        hashers.append(
            EventHasher.for_event(
                action=event.action,
                actor_id=event.actor_id,
                actor_kind=event.actor_kind,
                actor_label=event.actor_label,
                data=event.data,
                target_id=event.target_id,
                target_type=event.target_type,
            )
        )
    if deferred:
        return AuditEvent.objects.bulk_create(events)
    head = chain_head_for_update()
    sequence, prev_hash = head.sequence, head.last_hash
    occurred_at = timezone.now()
    for event, hasher in zip(events, hashers, strict=True):
        sequence += 1
        event.sequence = sequence
        event.occurred_at = occurred_at
        event.prev_hash = prev_hash
        event.hash = prev_hash = hasher.hash(
            occurred_at=occurred_at, prev_hash=prev_hash, sequence=sequence
        )
    events = AuditEvent.objects.bulk_create(events)
    head.sequence = sequence
    head.last_hash = prev_hash
    head.save(update_fields=["sequence", "last_hash"])
    return events


def _access_log_digest(entry: AccessLog) -> str:
    return access_log_digest(
        entry_id=entry.pk,
        occurred_at=entry.occurred_at,
        actor_kind=entry.actor_kind,
        actor_id=entry.actor_id,
        actor_label=entry.actor_label,
        channel=entry.channel,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        reason=entry.reason,
    )


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
    reason = pseudonymise_nhs_numbers((reason or "").strip())
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
        data={
            "access_log_id": entry.pk,
            "access_log_digest": _access_log_digest(entry),
            "channel": channel,
        },
        actor=who,
    )
    return entry


def audit_chain_checkpoint(
    *,
    full: bool = False,
    actor: Any = None,
    external: Sequence[SignedCheckpoint] | None = None,
) -> AuditEvent:
    """Verify the chain (from the last passing checkpoint unless ``full``) against
    every checkpoint in it and every external one, chain the verdict as an event, and
    when it passes sign (sequence, hash, time) and publish it outside the database.
    Unsealed events are sealed first: a checkpoint covers sealed sequences only.

    The verdict is the one ``audit_verify`` gives: both call the same verifier with
    the same external checkpoints. An external checkpoint with a bad signature is
    itself a failed verdict.
    """
    # Everything committed so far is chained first, so the verdict covers it; the
    # verdict's own event is sealed after it (both no-ops in inline mode).
    audit_seal_pending(wait=True)
    previous = None if full else audit_chain_last_checkpoint(ok_only=True)
    after_sequence = previous.data["through_sequence"] if previous else 0
    after_hash = previous.data["through_hash"] if previous else GENESIS_HASH
    try:
        trusted = checkpoints_trusted() if external is None else list(external)
    except CheckpointSignatureError as exc:
        verdict = ChainVerdict(False, 0, None, str(exc))
    else:
        verdict = audit_chain_verify(
            after_sequence=after_sequence, after_hash=after_hash, external=trusted
        )
    through_sequence = after_sequence + verdict.checked
    through_hash = after_hash
    if through_sequence != after_sequence:
        through_hash = AuditEvent.objects.values_list("hash", flat=True).get(
            sequence=through_sequence
        )
    data = {
        "ok": verdict.ok,
        "mode": "full" if previous is None else "incremental",
        "from_sequence": after_sequence + 1,
        "through_sequence": through_sequence,
        "through_hash": through_hash,
        "checked": verdict.checked,
        "broken_sequence": verdict.broken_sequence,
        "problem": verdict.problem,
        "signed": False,
    }
    key = signing_key()
    signed = None
    if verdict.ok and through_sequence and key is not None:
        signed = checkpoint_sign(
            sequence=through_sequence, hash=through_hash, at=timezone.now(), key=key
        )
        data.update(
            signed=True,
            signed_at=signed.signed_at,
            key_id=signed.key_id,
            signature=signed.signature,
        )
    target_type, target_id = CHECKPOINT_TARGET
    with transaction.atomic():
        event = audit_record(
            action=CHECKPOINT_ACTION,
            target_type=target_type,
            target_id=target_id,
            data=data,
            actor=actor,
        )
        if signed is not None:
            # Published before the verdict commits: a sink failure rolls the verdict
            # back; a commit failing after it leaves a true statement outside.
            _checkpoint_publish_once(signed)
    if event.sequence is None:
        audit_seal_pending(wait=True)
        event.refresh_from_db(fields=["sequence", "prev_hash", "hash"])
    return event


def _checkpoint_publish_once(signed: SignedCheckpoint) -> None:
    # The same sequence was published before (a re-run with nothing new).
    with contextlib.suppress(FileExistsError):
        checkpoint_publish(signed)


def audit_export_record(
    *, actor: Any, kind: str, filters: dict[str, str], rows: int
) -> AuditEvent:
    """An export of the audit trail or access log is itself an audited event."""
    return audit_record(
        action="ig.list_exported",
        target_type=kind,
        target_id="export",
        data={"filters": filters, "rows": rows},
        actor=actor,
    )


@transaction.atomic
def access_log_subject_record(
    *,
    actor: Any,
    channel: str,
    action: str,
    subject_key: str,
    reason: str,
    data: dict[str, Any],
) -> AccessLog:
    """Record a look-up about one patient (a search, a subject access export) under
    the keyed hash of the patient's identifier, never the identifier itself."""
    reason = pseudonymise_nhs_numbers((reason or "").strip())
    if not reason:
        raise ValueError("A reason is required to look up a patient.")
    who = actor_for(actor)
    entry = AccessLog.objects.create(
        occurred_at=timezone.now(),
        actor_kind=who.kind,
        actor_id=who.identifier,
        actor_label=who.label,
        channel=channel,
        action=action,
        target_type="patient",
        target_id=subject_key,
        reason=reason,
    )
    audit_record(
        action=f"content.{action}",
        target_type="patient",
        target_id=subject_key,
        data={
            "access_log_id": entry.pk,
            "access_log_digest": _access_log_digest(entry),
            "channel": channel,
            "reason": reason,
            **data,
        },
        actor=who,
    )
    return entry
