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


def _rfc8785_event_hash(**fields) -> str:
    """The definition: SHA-256 of ``rfc8785.dumps`` of the ten fields."""
    import hashlib

    import rfc8785

    moment = fields["occurred_at"].astimezone(datetime.UTC)
    payload = {**fields, "occurred_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    return hashlib.sha256(rfc8785.dumps(payload)).hexdigest()


TRICKY_DATA = [
    {},
    {"n": 0, "neg": -(2**53 - 1), "max": 2**53 - 1, "t": True, "f": False, "z": None},
    {"float": 1.5, "exp": 1e21, "small": 5e-324},  # floats: the rfc8785 path
    {"s": 'quote " backslash \\ slash / nul \x00 us \x1f del \x7f tab \t nl \n'},
    {"u": "é ß 中 \u2028 \U0001f600"},
    {"é": 1, "a": 2, "\ue000": 3, "\U0001f600": 4},  # UTF-16 key order
    {"nested": [{"b": [1, [2, {"d": "e"}]], "a": {}}, [], ""]},
]


@pytest.mark.parametrize("data", TRICKY_DATA)
@pytest.mark.parametrize(
    "moment",
    [
        datetime.datetime(2026, 12, 2, 12, 0, 0, 0, tzinfo=datetime.UTC),
        datetime.datetime(
            2026,
            7,
            1,
            13,
            30,
            5,
            123456,
            tzinfo=datetime.timezone(datetime.timedelta(hours=1)),
        ),
    ],
)
def test_the_fast_canonical_json_is_byte_for_byte_rfc8785(data, moment):
    fields = {
        "sequence": 123456789,
        "occurred_at": moment,
        "actor_kind": "user",
        "actor_id": "42",
        "actor_label": 'Zoë "IG"\n',
        "action": "content.view",
        "target_type": "document",
        "target_id": "\U0001f600",
        "data": data,
        "prev_hash": GENESIS_HASH,
    }
    assert event_hash(**fields) == _rfc8785_event_hash(**fields)


def test_integers_outside_rfc8785s_range_are_refused_as_rfc8785_refuses_them():
    import rfc8785

    fields = {
        "sequence": 1,
        "occurred_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "actor_kind": "user",
        "actor_id": "1",
        "actor_label": "x",
        "action": "x",
        "target_type": "t",
        "target_id": "1",
        "data": {"big": 2**53},
        "prev_hash": GENESIS_HASH,
    }
    with pytest.raises(rfc8785.IntegerDomainError):
        event_hash(**fields)
