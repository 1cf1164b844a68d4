"""The hash over one audit event: SHA-256 of its RFC 8785 canonical JSON."""

from __future__ import annotations

import hashlib
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
