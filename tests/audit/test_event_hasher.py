"""The two-step hash made outside the chain's lock is exactly ``event_hash``."""

from __future__ import annotations

import datetime

import pytest

from audit.chain import GENESIS_HASH, EventHasher, event_hash

EVENTS = [
    {
        "action": "document.mark_accepted",
        "actor_id": "system",
        "actor_kind": "system",
        "actor_label": "docflow",
        "data": {
            "guid": "abc",
            "status_code": 4010,
            "from": "delivered",
            "to": "accepted",
        },
        "target_id": "3f0c0b1e-9d53-4c53-9a38-5d3f0f7d1a11",
        "target_type": "document",
    },
    {
        "action": "content.search",
        "actor_id": "42",
        "actor_kind": "user",
        "actor_label": 'Zoë O\'Brien "IG"',
        "data": {"nested": {"b": [1, 2.5, None, True], "a": "é\n\t"}, "": ""},
        "target_id": "",
        "target_type": "patient",
    },
    {
        "action": "x",
        "actor_id": "",
        "actor_kind": "api_client",
        "actor_label": "",
        "data": {},
        "target_id": "0",
        "target_type": "organisation",
    },
]


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("sequence", [1, 999_999_999_999])
def test_the_two_step_hash_equals_the_hash_the_verifier_computes(event, sequence):
    occurred_at = datetime.datetime(2026, 11, 24, 9, 30, 1, 123456, tzinfo=datetime.UTC)
    prev_hash = GENESIS_HASH if sequence == 1 else "ab" * 32

    two_step = EventHasher.for_event(**event).hash(
        occurred_at=occurred_at, prev_hash=prev_hash, sequence=sequence
    )

    assert two_step == event_hash(
        sequence=sequence, occurred_at=occurred_at, prev_hash=prev_hash, **event
    )


def test_any_field_changes_the_hash():
    occurred_at = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC)
    base = EventHasher.for_event(**EVENTS[0]).hash(
        occurred_at=occurred_at, prev_hash=GENESIS_HASH, sequence=7
    )
    changed = {**EVENTS[0], "data": {**EVENTS[0]["data"], "status_code": 4011}}
    assert (
        EventHasher.for_event(**changed).hash(
            occurred_at=occurred_at, prev_hash=GENESIS_HASH, sequence=7
        )
        != base
    )
    assert (
        EventHasher.for_event(**EVENTS[0]).hash(
            occurred_at=occurred_at, prev_hash=GENESIS_HASH, sequence=8
        )
        != base
    )
