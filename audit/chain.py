"""The hash over one audit event: SHA-256 of its RFC 8785 canonical JSON."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

GENESIS_HASH = "0" * 64


def canonical_timestamp(moment: datetime) -> str:
    """UTC, microsecond precision: the same text on every database."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    sequence: int,
    occurred_at: datetime,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    """Hash every field of the event, including the previous event's hash."""
    payload = {
        "sequence": sequence,
        "occurred_at": canonical_timestamp(occurred_at),
        "actor_kind": actor_kind,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(rfc8785.dumps(payload)).hexdigest()


# The hashed fields in RFC 8785 order (keys sorted; all ASCII): those before
# ``occurred_at`` and after ``sequence`` do not depend on the chain.
_LEADING = ("action", "actor_id", "actor_kind", "actor_label", "data")
_TRAILING = ("target_id", "target_type")


@dataclass(frozen=True)
class EventHasher:
    """:func:`event_hash` in two steps: the canonical JSON of everything but the
    chain position (``occurred_at``, ``prev_hash``, ``sequence``) is made first,
    outside the chain's lock, and finished under it in a few microseconds. The
    result is byte for byte what :func:`event_hash` hashes."""

    head: bytes
    tail: bytes

    @classmethod
    def for_event(cls, **fields: Any) -> EventHasher:
        def members(names):
            return b",".join(
                rfc8785.dumps(name) + b":" + rfc8785.dumps(fields[name])
                for name in names
            )

        return cls(head=b"{" + members(_LEADING), tail=members(_TRAILING) + b"}")

    def hash(self, *, occurred_at: datetime, prev_hash: str, sequence: int) -> str:
        middle = (
            b',"occurred_at":'
            + rfc8785.dumps(canonical_timestamp(occurred_at))
            + b',"prev_hash":'
            + rfc8785.dumps(prev_hash)
            + b',"sequence":'
            + rfc8785.dumps(sequence)
            + b","
        )
        return hashlib.sha256(self.head + middle + self.tail).hexdigest()


def access_log_digest(
    *,
    entry_id: int,
    occurred_at: datetime,
    actor_kind: str,
    actor_id: str,
    actor_label: str,
    channel: str,
    action: str,
    target_type: str,
    target_id: str,
    reason: str,
) -> str:
    """SHA-256 of an access-log row's canonical JSON: the audit event that records
    the look carries it, so the row is chained with the audit trail."""
    payload = {
        "id": entry_id,
        "occurred_at": canonical_timestamp(occurred_at),
        "actor_kind": actor_kind,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "channel": channel,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "reason": reason,
    }
    return hashlib.sha256(rfc8785.dumps(payload)).hexdigest()
