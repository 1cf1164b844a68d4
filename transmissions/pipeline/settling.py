"""Settling, for every channel: hand an uncertain send to the channel it went by.

The channel of the document's pending transmission settles it by its own key
(Connect: the idempotency key; MESH: the message's local id); see each channel's
``settling`` and ``engine.settling`` for the rules.
"""

from __future__ import annotations

from typing import Any

from transmissions.channels.registry import channel_pending
from transmissions.engine.settling import Settled, sending_stuck_mark_unknown

__all__ = [
    "Settled",
    "outcome_unknown_settle",
    "sending_claim_settle",
    "sending_stuck_mark_unknown",
]


def outcome_unknown_settle(*, document_id: int, actor: Any = None) -> str:
    """Settle an ``outcome_unknown`` document by its key, through the channel of its
    pending transmission: found -> posted; absent -> back to ``ready``."""
    channel = channel_pending(document_id=document_id)
    return channel.outcome_unknown_settle(document_id=document_id, actor=actor)


def sending_claim_settle(*, document_id: int, actor: Any = None) -> str:
    """Settle a claim whose lease expired (its worker is dead) through its channel,
    at once; a claim whose lease was renewed meanwhile is left alone."""
    channel = channel_pending(document_id=document_id)
    return channel.claim_settle(document_id=document_id, actor=actor)
