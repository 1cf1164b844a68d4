"""The chain's verification status: recorded checkpoints, verification from the last
one, and what the IG admin shows without reading the whole table."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from audit.selectors import audit_chain_status, audit_chain_verify
from audit.services import audit_chain_checkpoint, audit_record
from audit.tasks import audit_chain_verify_scheduled
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
AUDIT_LIST = reverse("admin:audit_auditevent_changelist")


def record(n: int) -> list[AuditEvent]:
    return [
        audit_record(
            action="document.submitted", target_type="document", target_id=str(i)
        )
        for i in range(n)
    ]


def tamper(event: AuditEvent, **changes) -> None:
    """Rewrite a row behind the chain's back (past the PostgreSQL trigger)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "ALTER TABLE audit_auditevent "
                "DISABLE TRIGGER audit_auditevent_append_only"
            )
        try:
            AuditEvent.objects.filter(pk=event.pk).update(**changes)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "ALTER TABLE audit_auditevent "
                    "ENABLE TRIGGER audit_auditevent_append_only"
                )


@pytest.fixture
def ig_client(client, settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False
    user = UserFactory(password=None, is_staff=True, username="iggy")
    user.groups.add(Group.objects.get(name="IG officer"))
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_a_checkpoint_records_the_verdict_in_the_chain():
    events = record(3)

    checkpoint = audit_chain_checkpoint()

    assert checkpoint.action == "audit.chain_verified"
    assert checkpoint.data == {
        "ok": True,
        "mode": "full",
        "from_sequence": 1,
        "through_sequence": 3,
        "through_hash": events[-1].hash,
        "checked": 3,
        "broken_sequence": None,
        "problem": "",
        "signed": False,
    }
    assert audit_chain_verify().ok  # the checkpoint is itself a valid link


def test_the_next_checkpoint_verifies_only_what_came_after():
    record(3)
    first = audit_chain_checkpoint()
    later = record(2)

    second = audit_chain_checkpoint()

    assert second.data["mode"] == "incremental"
    assert second.data["from_sequence"] == 4  # the first checkpoint's own event
    assert second.data["checked"] == 3  # that event and the two after it
    assert second.data["through_hash"] == later[-1].hash
    assert first.data["through_sequence"] == 3


def test_verifying_from_a_checkpoint_finds_tampering_after_it():
    record(2)
    audit_chain_checkpoint()
    after = record(2)
    tamper(after[0], data={"forged": True})

    checkpoint = audit_chain_checkpoint()

    assert checkpoint.data["ok"] is False
    assert checkpoint.data["broken_sequence"] == after[0].sequence
    assert checkpoint.data["problem"] == "content does not match its hash"


def test_a_checkpoint_whose_event_was_rewritten_does_not_vouch_for_the_rest():
    events = record(2)
    audit_chain_checkpoint()
    tamper(events[-1], hash="f" * 64)

    verdict = audit_chain_verify(after_sequence=2, after_hash=events[-1].hash)

    assert not verdict.ok
    assert verdict.problem == "checkpoint event does not match its hash"


def test_a_full_checkpoint_reads_from_the_start():
    events = record(2)
    audit_chain_checkpoint()
    tamper(events[0], actor_label="someone else")

    assert audit_chain_checkpoint().data["ok"] is True  # incremental: not re-read
    full = audit_chain_checkpoint(full=True)

    assert full.data["ok"] is False
    assert full.data["broken_sequence"] == 1


def test_the_command_and_the_task_record_checkpoints():
    record(2)
    out = io.StringIO()

    call_command("audit_checkpoint", stdout=out)
    assert audit_chain_verify_scheduled() is True

    assert "OK: 2 audit events verified (full, through sequence 2)" in out.getvalue()
    assert AuditEvent.objects.filter(action="audit.chain_verified").count() == 2


def test_the_command_fails_on_a_broken_chain():
    events = record(2)
    tamper(events[1], action="document.cancel")

    with pytest.raises(CommandError, match="BROKEN at sequence 2"):
        call_command("audit_checkpoint", "--full")


def test_the_status_checks_the_events_since_the_checkpoint_when_few():
    record(2)
    audit_chain_checkpoint()
    record(3)

    status = audit_chain_status(max_unverified=10)

    assert status.checkpoint.data["through_sequence"] == 2
    assert status.unverified == 4  # the checkpoint event and three more
    assert status.verdict.ok and status.verdict.checked == 4
    assert status.ok is True


def test_the_status_leaves_too_many_events_to_the_scheduled_verification():
    record(5)

    status = audit_chain_status(max_unverified=3)

    assert status.checkpoint is None
    assert status.unverified == 5
    assert status.verdict is None
    assert status.ok is None


def test_the_admin_list_shows_the_last_verification_and_its_time(ig_client):
    record(2)
    checkpoint = audit_chain_checkpoint()

    body = ig_client.get(AUDIT_LIST).content.decode()

    assert 'class="chain-ok"' in body
    assert "last scheduled verification" in body
    assert f"through event #{checkpoint.data['through_sequence']}" in body


def test_the_admin_list_shows_a_broken_chain(ig_client):
    events = record(2)
    tamper(events[0], data={"forged": True})
    audit_chain_checkpoint(full=True)

    body = ig_client.get(AUDIT_LIST).content.decode()

    assert 'class="chain-broken"' in body
    assert "broken at #1: content does not match its hash" in body


def test_the_admin_list_does_not_read_a_long_unverified_tail(ig_client, settings):
    settings.DOCFLOW_AUDIT_ADMIN_VERIFY_LIMIT = 2
    record(3)

    body = ig_client.get(AUDIT_LIST).content.decode()

    assert 'class="chain-unchecked"' in body
    assert "3 event(s), too many to check here" in body
