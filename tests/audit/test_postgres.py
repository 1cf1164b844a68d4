import threading

import pytest
from django.db import DatabaseError, connection, transaction

from audit import selectors
from audit.models import AccessChannel, AccessLog, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import access_log_record, audit_record

pytestmark = pytest.mark.postgres


@pytest.fixture
def audit_event(db) -> AuditEvent:
    return audit_record(
        action="document.submitted", target_type="document", target_id="doc-1"
    )


@pytest.fixture
def access_log(db) -> AccessLog:
    return access_log_record(
        actor=None,
        channel=AccessChannel.ADMIN,
        action="view",
        target_type="document",
        target_id="doc-1",
        reason="IG review",
    )


def run_refused(sql: str, params: tuple) -> None:
    """Run one statement in a savepoint so the test transaction survives the refusal."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_trigger_refuses_update_of_an_audit_event(audit_event):
    with pytest.raises(
        DatabaseError, match="audit table audit_auditevent is append-only: UPDATE"
    ):
        run_refused(
            "UPDATE audit_auditevent SET action = %s WHERE id = %s",
            ("document.cancelled", audit_event.pk),
        )

    stored = AuditEvent.objects.get(pk=audit_event.pk)
    assert (stored.action, stored.hash) == ("document.submitted", audit_event.hash)


def test_trigger_refuses_delete_of_an_audit_event(audit_event):
    with pytest.raises(
        DatabaseError, match="audit table audit_auditevent is append-only: DELETE"
    ):
        run_refused("DELETE FROM audit_auditevent WHERE id = %s", (audit_event.pk,))

    assert AuditEvent.objects.filter(pk=audit_event.pk).exists()


def test_trigger_refuses_orm_updates_of_audit_events_too(audit_event):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=audit_event.pk).update(data={"forged": True})

    assert AuditEvent.objects.get(pk=audit_event.pk).data == {}


def test_trigger_refuses_update_of_an_access_log_row(access_log):
    with pytest.raises(
        DatabaseError, match="audit table audit_accesslog is append-only: UPDATE"
    ):
        run_refused(
            "UPDATE audit_accesslog SET reason = %s WHERE id = %s",
            ("nothing to see", access_log.pk),
        )

    assert AccessLog.objects.get(pk=access_log.pk).reason == "IG review"


def test_trigger_refuses_delete_of_an_access_log_row(access_log):
    with pytest.raises(
        DatabaseError, match="audit table audit_accesslog is append-only: DELETE"
    ):
        run_refused("DELETE FROM audit_accesslog WHERE id = %s", (access_log.pk,))

    assert AccessLog.objects.filter(pk=access_log.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_build_one_gapless_verifiable_chain():
    writers, events_each = 8, 25
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            start.wait(timeout=30)
            for n in range(events_each):
                with transaction.atomic():
                    audit_record(
                        action="test.concurrent",
                        target_type="writer",
                        target_id=str(writer),
                        data={"n": n},
                    )
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, writers * events_each + 1))
    per_writer = {
        str(w): AuditEvent.objects.filter(target_id=str(w)).count()
        for w in range(writers)
    }
    assert set(per_writer.values()) == {events_each}
    verdict = audit_chain_verify()
    assert (verdict.ok, verdict.checked) == (True, writers * events_each)


@pytest.mark.django_db(transaction=True)
def test_events_committed_while_the_chain_is_verified_are_not_reported_as_tampering(
    monkeypatch,
):
    for n in range(3):
        audit_record(action="test.before", target_type="t", target_id=str(n))
    real_event_hash = selectors.event_hash

    def event_hash_then_another_writer_commits(**fields):
        if fields["sequence"] == 3:
            # Another process commits an event while the scan is under way.
            writer = threading.Thread(target=record_in_own_connection)
            writer.start()
            writer.join(timeout=30)
        return real_event_hash(**fields)

    def record_in_own_connection():
        try:
            audit_record(action="test.during", target_type="t", target_id="4")
        finally:
            connection.close()

    monkeypatch.setattr(selectors, "event_hash", event_hash_then_another_writer_commits)

    verdict = audit_chain_verify()

    assert AuditEvent.objects.filter(action="test.during").count() == 1
    assert verdict.ok, verdict
    assert verdict.checked == 3
    assert audit_chain_verify() == selectors.ChainVerdict(True, 4)
