"""The hash over one audit event: SHA-256 of its RFC 8785 canonical JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785

GENESIS_HASH = "0" * 64
_ZERO = timedelta(0)


def canonical_timestamp(moment: datetime) -> str:
    """UTC, microsecond precision: the same text on every database."""
    if moment.tzinfo is UTC or moment.utcoffset() == _ZERO:
        # What strftime below gives, several times faster (the verifier's loop).
        return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# RFC 8785 for the JSON audit data holds (no floats, integers within +-(2**53 - 1),
# ASCII keys) is exactly what the standard library's C encoder writes with sorted
# keys and no spaces: the same string escapes, integer digits and key order. That
# encoder is ten times faster; anything outside that subset goes through rfc8785.
_MAX_SAFE_INT = 2**53 - 1
_PLAIN_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, check_circular=False
)
_encode_string = json.encoder.encode_basestring


def _plain(value: Any) -> bool:
    """True when ``value`` is in the subset where the C encoder is RFC 8785."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if kind is dict:
        return all(
            type(key) is str and key.isascii() and _plain(item)
            for key, item in value.items()
        )
    if kind is list:
        return all(_plain(item) for item in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value`` (UTF-8)."""
    if _plain(value):
        try:
            return _PLAIN_ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 says what is wrong
            pass
    return rfc8785.dumps(value)


def _string(text: str) -> bytes:
    return _encode_string(text).encode("utf-8")


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
    """Hash every field of the event, including the previous event's hash: SHA-256
    of the RFC 8785 canonical JSON of all ten (the members written out in RFC 8785
    key order, byte for byte what ``rfc8785.dumps`` of the dict gives)."""
    try:
        canonical = b"".join(
            (
                b'{"action":',
                _string(action),
                b',"actor_id":',
                _string(actor_id),
                b',"actor_kind":',
                _string(actor_kind),
                b',"actor_label":',
                _string(actor_label),
                b',"data":',
                canonical_json(data),
                b',"occurred_at":"',
                canonical_timestamp(occurred_at).encode("ascii"),
                b'","prev_hash":',
                _string(prev_hash),
                b',"sequence":',
                str(int(sequence)).encode("ascii"),
                b',"target_id":',
                _string(target_id),
                b',"target_type":',
                _string(target_type),
                b"}",
            )
        )
    except UnicodeEncodeError:
        canonical = rfc8785.dumps(
            {
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
        )
    return hashlib.sha256(canonical).hexdigest()


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
