import itertools

import pytest
from django.db import transaction

from audit.actors import Actor
from audit.chain import GENESIS_HASH, access_log_digest, event_hash
from audit.models import AccessChannel, AccessLog, AuditChainHead, AuditEvent
from audit.services import access_log_record, audit_record
from tests.factories import UserFactory, make_api_key

pytestmark = pytest.mark.django_db


def recomputed_hash(event: AuditEvent) -> str:
    return event_hash(
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


def record_events(count: int) -> list[AuditEvent]:
    return [
        audit_record(
            action="document.submitted",
            target_type="document",
            target_id=f"doc-{n}",
            data={"n": n, "note": "ünïcode ✓"},
        )
        for n in range(1, count + 1)
    ]


def test_audit_record_numbers_events_one_to_n_in_order():
    record_events(5)

    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == [1, 2, 3, 4, 5]


def test_audit_record_links_each_event_to_the_hash_of_the_one_before():
    record_events(4)

    stored = list(AuditEvent.objects.order_by("sequence"))
    assert stored[0].prev_hash == GENESIS_HASH
    for previous, event in itertools.pairwise(stored):
        assert event.prev_hash == previous.hash


def test_stored_events_hash_to_the_value_recorded_with_them():
    record_events(3)

    stored = list(AuditEvent.objects.order_by("sequence"))
    assert [recomputed_hash(event) for event in stored] == [e.hash for e in stored]
    assert len({event.hash for event in stored}) == 3


def test_chain_head_points_at_the_last_event():
    last = record_events(3)[-1]

    head = AuditChainHead.objects.get(pk=1)
    assert (head.sequence, head.last_hash) == (3, last.hash)


def test_audit_record_stores_what_it_was_given():
    event = audit_record(
        action="document.cancelled",
        target_type="document",
        target_id=1234,
        data={"reason": "duplicate"},
    )

    event.refresh_from_db()
    assert event.action == "document.cancelled"
    assert (event.target_type, event.target_id) == ("document", "1234")
    assert event.data == {"reason": "duplicate"}
    assert event.occurred_at.utcoffset().total_seconds() == 0


def test_event_in_a_rolled_back_transaction_leaves_no_gap_in_the_chain():
    first = audit_record(action="a.first", target_type="t", target_id="1")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="a.lost", target_type="t", target_id="2")
        raise RuntimeError("caller failed after auditing")
    after = audit_record(action="a.after", target_type="t", target_id="3")

    assert list(AuditEvent.objects.values_list("action", flat=True)) == [
        "a.first",
        "a.after",
    ]
    assert after.sequence == 2
    assert after.prev_hash == first.hash


def test_no_actor_is_recorded_as_the_system():
    event = audit_record(action="a.b", target_type="t", target_id="1", actor=None)

    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "system",
        "system",
        "docflow",
    )


def test_a_django_user_is_recorded_as_a_user_by_primary_key_and_username():
    user = UserFactory(username="ig.officer")

    event = audit_record(action="a.b", target_type="t", target_id="1", actor=user)

    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "user",
        str(user.pk),
        "ig.officer",
    )


def test_an_object_with_audit_actor_is_recorded_as_the_actor_it_names():
    api_key, _ = make_api_key(name="EPR")

    event = audit_record(action="a.b", target_type="t", target_id="1", actor=api_key)

    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "api_client",
        api_key.prefix,
        "EPR",
    )


def test_any_object_offering_audit_actor_is_accepted_without_importing_its_class():
    class Integration:
        def audit_actor(self) -> Actor:
            return Actor(kind="api_client", identifier="abc123", label="Letters")

    event = audit_record(
        action="a.b", target_type="t", target_id="1", actor=Integration()
    )

    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "api_client",
        "abc123",
        "Letters",
    )


@pytest.mark.parametrize("reason", ["", "   \n\t", None])
def test_content_access_without_a_reason_is_refused_and_stores_nothing(reason):
    user = UserFactory()

    with pytest.raises(ValueError, match="reason is required"):
        access_log_record(
            actor=user,
            channel=AccessChannel.STAFF_PAGE,
            action="view",
            target_type="document",
            target_id="doc-1",
            reason=reason,
        )

    assert AccessLog.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_content_access_writes_an_access_log_row_with_the_reason_given():
    user = UserFactory(username="clinical.admin")

    entry = access_log_record(
        actor=user,
        channel=AccessChannel.STAFF_PAGE,
        action="view",
        target_type="document",
        target_id="doc-1",
        reason="  Practice asked for a copy  ",
    )

    stored = AccessLog.objects.get()
    assert stored.pk == entry.pk
    assert (stored.actor_kind, stored.actor_id, stored.actor_label) == (
        "user",
        str(user.pk),
        "clinical.admin",
    )
    assert (stored.channel, stored.action) == ("staff_page", "view")
    assert (stored.target_type, stored.target_id) == ("document", "doc-1")
    assert stored.reason == "Practice asked for a copy"


def test_content_access_chains_a_content_event_that_points_at_the_access_log_row():
    earlier = audit_record(action="document.submitted", target_type="t", target_id="1")
    api_key, _ = make_api_key(name="EPR")

    entry = access_log_record(
        actor=api_key,
        channel=AccessChannel.API,
        action="download",
        target_type="document",
        target_id="doc-1",
        reason="Re-sending to the practice",
    )

    event = AuditEvent.objects.get(action="content.download")
    assert event.sequence == earlier.sequence + 1
    assert event.prev_hash == earlier.hash
    assert event.hash == recomputed_hash(event)
    assert (event.target_type, event.target_id) == ("document", "doc-1")
    entry.refresh_from_db()
    assert event.data == {
        "access_log_id": entry.pk,
        "access_log_digest": access_log_digest(
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
        ),
        "channel": "api",
    }
    assert (event.actor_kind, event.actor_id) == ("api_client", api_key.prefix)
    assert (entry.actor_kind, entry.actor_id) == ("api_client", api_key.prefix)
