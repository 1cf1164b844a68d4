import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.chain import event_hash
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit_record
from tests.audit.owner import audit_guards_disabled

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_audit_sql():
    """Run raw SQL on audit_auditevent, getting past the PostgreSQL trigger."""

    def run(sql: str, params: tuple = ()) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "ALTER TABLE audit_auditevent "
                    "DISABLE TRIGGER audit_auditevent_append_only"
                )
            try:
                cursor.execute(sql, params)
            finally:
                if connection.vendor == "postgresql":
                    cursor.execute(
                        "ALTER TABLE audit_auditevent "
                        "ENABLE TRIGGER audit_auditevent_append_only"
                    )

    return run


@pytest.fixture
def five_events() -> list[AuditEvent]:
    return [
        audit_record(
            action="document.submitted",
            target_type="document",
            target_id=f"doc-{n}",
            data={"n": n},
        )
        for n in range(1, 6)
    ]


def rehashed(event: AuditEvent, **changes) -> dict:
    """The event's fields with ``changes`` applied and a hash that matches them."""
    fields = {
        "sequence": event.sequence,
        "occurred_at": event.occurred_at,
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "data": event.data,
        "prev_hash": event.prev_hash,
        **changes,
    }
    return {**fields, "hash": event_hash(**fields)}


def audit_verify() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_audit_verify_prints_ok_with_the_count_on_an_intact_chain(five_events):
    assert audit_verify().startswith("OK: 5 audit events verified")


def test_audit_verify_accepts_an_empty_chain():
    assert audit_verify().startswith("OK: 0 audit events verified")


def test_altered_event_data_is_reported_at_its_sequence(five_events, raw_audit_sql):
    raw_audit_sql(
        "UPDATE audit_auditevent SET target_id = %s WHERE sequence = %s",
        ("doc-999", 3),
    )

    with pytest.raises(CommandError) as failure:
        audit_verify()

    assert str(failure.value) == (
        "BROKEN at sequence 3: content does not match its hash "
        "(2 events verified before it)"
    )


def test_altered_json_data_is_reported_at_its_sequence(five_events, raw_audit_sql):
    raw_audit_sql(
        "UPDATE audit_auditevent SET data = %s WHERE sequence = %s",
        (json.dumps({"n": 99}), 2),
    )

    verdict = audit_chain_verify()

    assert AuditEvent.objects.get(sequence=2).data == {"n": 99}
    assert (verdict.ok, verdict.broken_sequence, verdict.checked) == (False, 2, 1)
    assert verdict.problem == "content does not match its hash"


def test_rehashing_an_altered_event_still_breaks_the_link_to_the_next(
    five_events, raw_audit_sql
):
    forged = rehashed(five_events[1], action="document.cancelled")
    raw_audit_sql(
        "UPDATE audit_auditevent SET action = %s, hash = %s WHERE sequence = %s",
        (forged["action"], forged["hash"], 2),
    )

    with pytest.raises(
        CommandError, match=r"^BROKEN at sequence 3: previous hash does not match"
    ):
        audit_verify()


def test_rewriting_and_rehashing_the_last_event_is_caught_by_the_chain_head(
    five_events, raw_audit_sql
):
    forged = rehashed(five_events[-1], data={"n": 500})
    raw_audit_sql(
        "UPDATE audit_auditevent SET data = %s, hash = %s WHERE sequence = %s",
        (json.dumps(forged["data"]), forged["hash"], 5),
    )

    with pytest.raises(
        CommandError, match=r"^BROKEN at sequence 5: chain head does not match"
    ):
        audit_verify()


def test_an_event_appended_without_moving_the_chain_head_is_reported(five_events):
    # INSERT is not refused by the trigger: a well-formed event can be appended.
    AuditEvent.objects.create(
        **rehashed(
            five_events[-1],
            sequence=6,
            action="document.cancelled",
            prev_hash=five_events[-1].hash,
        )
    )

    with pytest.raises(
        CommandError, match=r"^BROKEN at sequence 6: events follow the chain head"
    ):
        audit_verify()


def test_deleting_the_chain_head_along_with_the_last_event_is_reported(
    five_events, raw_audit_sql
):
    raw_audit_sql("DELETE FROM audit_auditevent WHERE sequence = %s", (5,))
    with audit_guards_disabled():
        AuditChainHead.objects.filter(pk=1).delete()

    with pytest.raises(
        CommandError, match=r"^BROKEN at sequence 5: chain head is missing"
    ):
        audit_verify()


def test_deleting_the_last_event_is_detected_by_the_chain_head(
    five_events, raw_audit_sql
):
    raw_audit_sql("DELETE FROM audit_auditevent WHERE sequence = %s", (5,))

    with pytest.raises(CommandError) as failure:
        audit_verify()

    assert str(failure.value) == (
        "BROKEN at sequence 5: chain head points past the last event "
        "(4 events verified before it)"
    )


def test_deleting_the_last_two_events_is_detected_by_the_chain_head(
    five_events, raw_audit_sql
):
    raw_audit_sql("DELETE FROM audit_auditevent WHERE sequence >= %s", (4,))

    with pytest.raises(
        CommandError, match=r"^BROKEN at sequence 4: chain head points past"
    ):
        audit_verify()


def test_deleting_an_event_in_the_middle_is_reported_as_a_gap(
    five_events, raw_audit_sql
):
    raw_audit_sql("DELETE FROM audit_auditevent WHERE sequence = %s", (3,))

    with pytest.raises(CommandError) as failure:
        audit_verify()

    assert str(failure.value) == (
        "BROKEN at sequence 3: sequence gap: expected 3, found 4 "
        "(2 events verified before it)"
    )


def test_deleting_the_first_event_is_reported_at_sequence_one(
    five_events, raw_audit_sql
):
    raw_audit_sql("DELETE FROM audit_auditevent WHERE sequence = %s", (1,))

    with pytest.raises(CommandError, match=r"^BROKEN at sequence 1: sequence gap"):
        audit_verify()
