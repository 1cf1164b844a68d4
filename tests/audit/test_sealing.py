"""Audited writes without the chain lock: events written unsealed, chained by the
sealer in the order they commit, its lag reported, its updates guarded."""

from __future__ import annotations

import itertools
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.chain import GENESIS_HASH
from audit.models import AccessChannel, AuditChainHead, AuditEvent
from audit.sealing import (
    audit_seal_lag,
    audit_seal_pending,
    chain_head_for_update,
    sealing_mode,
)
from audit.selectors import audit_chain_verify
from audit.services import EventSpec, access_log_record, audit_record, audit_record_many
from operations.health import check_audit_sealer
from operations.metrics import metrics_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def deferred(settings):
    settings.AUDIT_SEALING = "deferred"


@pytest.fixture
def deferred_across_connections(transactional_db, reference_data, settings):
    """Deferred sealing in a committed database, the chain head seeded as the
    migrations seed it (a flush by an earlier transactional test removes it)."""
    settings.AUDIT_SEALING = "deferred"


def audit_verify() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_the_default_mode_is_deferred_on_postgresql_and_inline_elsewhere(settings):
    settings.AUDIT_SEALING = ""
    expected = "deferred" if connection.vendor == "postgresql" else "inline"
    assert sealing_mode() == expected


def test_a_deferred_event_is_written_unsealed_and_takes_no_chain_position(deferred):
    event = audit_record(
        action="document.submitted", target_type="document", target_id=1
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.sequence, stored.prev_hash, stored.hash) == (None, None, None)
    assert AuditChainHead.objects.get(pk=1).sequence == 0
    assert audit_seal_lag().pending == 1


def test_the_sealer_chains_waiting_events_in_id_order_and_moves_the_head(deferred):
    events = audit_record_many(
        [EventSpec("document.sent", "document", str(n), {"n": n}) for n in range(5)]
    )

    assert audit_seal_pending() == 5

    stored = list(AuditEvent.objects.order_by("sequence"))
    assert [e.pk for e in stored] == [e.pk for e in events]
    assert [e.sequence for e in stored] == [1, 2, 3, 4, 5]
    assert stored[0].prev_hash == GENESIS_HASH
    for previous, event in itertools.pairwise(stored):
        assert event.prev_hash == previous.hash
    head = AuditChainHead.objects.get(pk=1)
    assert (head.sequence, head.last_hash) == (5, stored[-1].hash)
    assert audit_chain_verify() == audit_chain_verify().__class__(True, 5)
    assert audit_seal_pending() == 0
    assert audit_seal_lag().pending == 0


def test_sealed_and_inline_events_continue_one_chain(settings):
    audit_record(action="a.inline", target_type="t", target_id=1)
    settings.AUDIT_SEALING = "deferred"
    audit_record(action="a.deferred", target_type="t", target_id=2)
    audit_seal_pending()
    settings.AUDIT_SEALING = "inline"
    audit_record(action="a.inline", target_type="t", target_id=3)

    assert list(AuditEvent.objects.values_list("target_id", "sequence")) == [
        ("1", 1),
        ("2", 2),
        ("3", 3),
    ]
    assert audit_chain_verify().ok


def test_batches_smaller_than_the_backlog_seal_all_of_it(deferred):
    audit_record_many([EventSpec("x.y", "t", str(n)) for n in range(7)])

    assert audit_seal_pending(batch_size=3) == 7
    assert audit_chain_verify() == audit_chain_verify().__class__(True, 7)


def test_audit_verify_reports_what_waits_and_fails_past_the_bound(deferred, settings):
    audit_record(action="a.sealed", target_type="t", target_id=1)
    audit_seal_pending()
    audit_record(action="a.waiting", target_type="t", target_id=2)

    settings.AUDIT_SEAL_MAX_LAG_SECONDS = 3600
    assert "OK: 1 audit events verified" in audit_verify()
    assert "; 1 more wait to be sealed" in audit_verify()

    settings.AUDIT_SEAL_MAX_LAG_SECONDS = 0
    with pytest.raises(
        CommandError, match=r"^UNSEALED: 1 audit events wait to be chained"
    ):
        audit_verify()

    audit_seal_pending()
    assert audit_verify().strip().endswith("(newest at sequence 0)")


def test_metrics_and_readiness_show_the_sealer_lag(deferred, settings):
    assert check_audit_sealer()["status"] == "ok"
    audit_record_many([EventSpec("x.y", "t", str(n)) for n in range(3)])

    text = metrics_text().decode()
    assert "docflow_audit_unsealed_events 3.0" in text
    assert "docflow_audit_seal_lag_seconds " in text
    settings.AUDIT_SEAL_MAX_LAG_SECONDS = 0
    report = check_audit_sealer()
    assert (report["status"], report["unsealed"]) == ("warn", 3)

    audit_seal_pending()
    assert "docflow_audit_unsealed_events 0.0" in metrics_text().decode()
    assert check_audit_sealer()["unsealed"] == 0


def test_an_access_log_row_whose_event_waits_is_pending_not_missing(deferred):
    access_log_record(
        actor=None,
        channel=AccessChannel.ADMIN,
        action="view",
        target_type="document",
        target_id="doc-1",
        reason="IG review",
    )

    assert audit_chain_verify().ok
    audit_seal_pending()
    assert audit_chain_verify() == audit_chain_verify().__class__(True, 1)


def test_a_checkpoint_seals_first_and_then_seals_its_own_verdict(deferred):
    audit_record_many([EventSpec("x.y", "t", str(n)) for n in range(4)])

    call_command("audit_checkpoint", stdout=StringIO())

    verdict = AuditEvent.objects.get(action="audit.chain_verified")
    assert verdict.sequence == 5
    assert verdict.data["through_sequence"] == 4
    assert audit_seal_lag().pending == 0


def test_the_sealer_command_seals_once(deferred):
    audit_record(action="x.y", target_type="t", target_id=1)
    out = StringIO()
    call_command("audit_sealer", "--once", stdout=out)
    assert out.getvalue().strip() == "sealed 1 audit events"


# PostgreSQL: real concurrency between connections, and the database's guards.


def _in_own_connection(work, *args):
    """Run ``work`` on a thread of its own (its own database connection)."""
    failures: list[BaseException] = []

    def run():
        try:
            work(*args)
        except BaseException as error:  # reported by the caller
            failures.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_that_commits_after_a_higher_id_is_sealed_after_it(
    deferred_across_connections,
):
    inserted, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic():
            audit_record(action="slow.writer", target_type="t", target_id="low")
            inserted.set()
            assert release.wait(timeout=30)

    thread, failures = _in_own_connection(slow_writer)
    assert inserted.wait(timeout=30)
    fast = audit_record(action="fast.writer", target_type="t", target_id="high")

    # The lower id is in flight: the sealer seals what is committed, and does not
    # wait for it or leave a gap for it.
    assert audit_seal_pending() == 1
    release.set()
    thread.join(timeout=30)
    assert failures == []
    assert audit_seal_pending() == 1

    slow = AuditEvent.objects.get(action="slow.writer")
    fast = AuditEvent.objects.get(pk=fast.pk)
    assert slow.pk < fast.pk
    assert (fast.sequence, slow.sequence) == (1, 2)
    assert slow.prev_hash == fast.hash
    assert audit_chain_verify() == audit_chain_verify().__class__(True, 2)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_do_not_wait_for_the_sealer_and_a_second_sealer_steps_aside(
    deferred_across_connections,
):
    audit_record(action="x.before", target_type="t", target_id=1)
    holding, release = threading.Event(), threading.Event()

    def sealer_holding_the_head():
        with transaction.atomic():
            assert chain_head_for_update() is not None
            holding.set()
            assert release.wait(timeout=30)

    thread, failures = _in_own_connection(sealer_holding_the_head)
    assert holding.wait(timeout=30)
    try:
        # An audited write goes through while the head is locked...
        audit_record(action="x.during", target_type="t", target_id=2)
        # ...and a second sealer returns at once, sealing nothing.
        assert audit_seal_pending() == 0
    finally:
        release.set()
        thread.join(timeout=30)
    assert failures == []
    assert audit_seal_pending() == 2
    assert audit_chain_verify().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deferred_writers_and_a_looping_sealer_build_one_chain(
    deferred_across_connections,
):
    writers, events_each = 6, 30
    start = threading.Barrier(writers + 1)
    done = threading.Event()

    def write(writer: int) -> None:
        start.wait(timeout=30)
        for n in range(events_each):
            audit_record(
                action="test.concurrent",
                target_type="writer",
                target_id=str(writer),
                data={"n": n},
            )

    def seal() -> None:
        start.wait(timeout=30)
        while not done.is_set():
            audit_seal_pending()

    threads = [_in_own_connection(write, w) for w in range(writers)]
    sealer = _in_own_connection(seal)
    for thread, _ in threads:
        thread.join(timeout=120)
    done.set()
    sealer[0].join(timeout=60)
    assert all(failures == [] for _, failures in [*threads, sealer])
    audit_seal_pending()

    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, writers * events_each + 1))
    verdict = audit_chain_verify()
    assert (verdict.ok, verdict.checked) == (True, writers * events_each)


def _seal_sql(sql: str, params) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.postgres
def test_the_database_lets_only_a_sealing_update_through(deferred):
    first = audit_record(action="x.y", target_type="t", target_id=1)
    audit_seal_pending()
    first.refresh_from_db()
    waiting = audit_record(action="x.y", target_type="t", target_id=2)

    # Sealing that changes anything else is refused.
    with pytest.raises(DatabaseError, match="append-only: UPDATE"):
        _seal_sql(
            "UPDATE audit_auditevent SET sequence = 2, prev_hash = %s, hash = %s, "
            "action = 'forged' WHERE id = %s",
            (first.hash, "a" * 64, waiting.pk),
        )
    # Sealing that does not follow the chain is refused.
    with pytest.raises(DatabaseError, match="must follow the chain"):
        _seal_sql(
            "UPDATE audit_auditevent SET sequence = 2, prev_hash = %s, hash = %s "
            "WHERE id = %s",
            ("b" * 64, "a" * 64, waiting.pk),
        )
    with pytest.raises(DatabaseError, match="must follow the chain"):
        _seal_sql(
            "UPDATE audit_auditevent SET sequence = 3, prev_hash = %s, hash = %s "
            "WHERE id = %s",
            (first.hash, "a" * 64, waiting.pk),
        )
    # A sealed event cannot be sealed again.
    with pytest.raises(DatabaseError, match="append-only: UPDATE"):
        _seal_sql(
            "UPDATE audit_auditevent SET hash = %s WHERE id = %s",
            ("c" * 64, first.pk),
        )
    # Nor can an unsealed event be half sealed, or inserted with a hash.
    with pytest.raises(DatabaseError):
        _seal_sql(
            "UPDATE audit_auditevent SET hash = %s WHERE id = %s",
            ("d" * 64, waiting.pk),
        )
    with pytest.raises(DatabaseError, match="an unsealed event carries no hash"):
        _seal_sql(
            "INSERT INTO audit_auditevent (occurred_at, actor_kind, actor_id, "
            "actor_label, action, target_type, target_id, data, hash) VALUES "
            "(now(), 'user', 'x', 'x', 'x', 't', '1', '{}', %s)",
            ("e" * 64,),
        )

    assert audit_seal_pending() == 1
    assert audit_chain_verify().ok
