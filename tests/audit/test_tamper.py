"""The insider with the owner's database powers, attack by attack.

Each attack runs as the table owner could (every audit trigger disabled, hashes
recomputed, the chain head moved) against a chain with a signed checkpoint published
outside the database. Every one that touches what the checkpoint covers is named by
``audit_verify`` at the first sequence that disagrees, and the scheduled checkpoint
reaches the same verdict.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.chain import GENESIS_HASH, event_hash
from audit.models import AccessChannel, AccessLog, AuditChainHead, AuditEvent
from audit.sealing import audit_seal_pending
from audit.services import access_log_record, audit_chain_checkpoint, audit_record
from audit.signing import private_key_text, public_key_text
from tests.audit.owner import audit_guards_disabled

pytestmark = pytest.mark.django_db


@pytest.fixture
def signing_key(monkeypatch) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv("DOCFLOW_AUDIT_SIGNING_KEY", private_key_text(key))
    return key


@pytest.fixture(params=["inline", "deferred"])
def chain(request, settings, signing_key, _audit_checkpoints_in_tmp) -> dict:
    """Events 1-5 (event 3 an access-log look), a signed checkpoint through 5
    (recorded as event 6), then events 7-8 after it. Written inline, or unsealed and
    then sealed (every attack comes after sealing, so both must be caught alike)."""
    settings.AUDIT_SEALING = request.param
    for n in (1, 2):
        audit_record(action="document.submitted", target_type="document", target_id=n)
    access_log_record(
        actor=None,
        channel=AccessChannel.ADMIN,
        action="view",
        target_type="document",
        target_id="doc-3",
        reason="IG review",
    )
    for n in (4, 5):
        audit_record(action="document.submitted", target_type="document", target_id=n)
    checkpoint = audit_chain_checkpoint(full=True)
    assert checkpoint.sequence == 6 and checkpoint.data["signed"] is True
    for n in (7, 8):
        audit_record(action="document.sent", target_type="document", target_id=n)
    audit_seal_pending()
    assert list(AuditEvent.objects.values_list("sequence", flat=True)) == list(
        range(1, 9)
    )
    [published] = list(_audit_checkpoints_in_tmp.glob("*.json"))
    assert json.loads(published.read_text())["sequence"] == 5
    return {"directory": _audit_checkpoints_in_tmp}


def audit_verify() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def verdicts_agree_on(sequence: int, problem: str) -> None:
    """audit_verify and a full checkpoint both name ``sequence``."""
    with pytest.raises(CommandError, match=rf"^BROKEN at sequence {sequence}: "):
        audit_verify()
    data = audit_chain_checkpoint(full=True).data
    assert (data["ok"], data["broken_sequence"]) == (False, sequence)
    assert problem in data["problem"]
    assert data["signed"] is False


def rows_from(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"))


def rehash_and_store(events: list[AuditEvent], prev_hash: str) -> None:
    """Recompute every hash from ``prev_hash`` on and move the head, as the owner."""
    with audit_guards_disabled():
        for event in events:
            event.prev_hash = prev_hash
            event.hash = prev_hash = event_hash(
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
            AuditEvent.objects.filter(pk=event.pk).update(
                sequence=event.sequence,
                data=event.data,
                action=event.action,
                prev_hash=event.prev_hash,
                hash=event.hash,
            )
        AuditChainHead.objects.filter(pk=1).update(
            sequence=events[-1].sequence, last_hash=prev_hash
        )


def previous_hash(sequence: int) -> str:
    if sequence == 1:
        return GENESIS_HASH
    return AuditEvent.objects.get(sequence=sequence - 1).hash


def test_the_untouched_chain_verifies_against_its_external_checkpoint(chain):
    assert audit_verify().strip() == (
        "OK: 8 audit events verified against 1 external checkpoints "
        "(newest at sequence 5)"
    )


def test_a_modified_event_is_named(chain):
    with audit_guards_disabled():
        AuditEvent.objects.filter(sequence=2).update(data={"forged": True})

    verdicts_agree_on(2, "content does not match its hash")


def test_a_modified_event_with_every_hash_recomputed_and_the_head_moved_is_named_at_the_checkpoint(  # noqa: E501
    chain,
):
    events = rows_from(2)
    events[0].action = "document.cancelled"
    rehash_and_store(events, previous_hash(2))
    # Inside the database the forgery is consistent: only the outside tells.
    assert AuditEvent.objects.get(sequence=2).action == "document.cancelled"

    verdicts_agree_on(5, "differs from the external checkpoint signed at")


def test_a_rewritten_checkpoint_event_does_not_hide_the_rewrite(chain):
    events = rows_from(2)
    events[0].action = "document.cancelled"
    recorded = next(event for event in events if event.sequence == 6)
    recorded.data = {**recorded.data, "through_hash": "0" * 64}
    rehash_and_store(events, previous_hash(2))

    verdicts_agree_on(5, "external checkpoint")


def test_a_deleted_event_is_named(chain):
    with audit_guards_disabled():
        AuditEvent.objects.filter(sequence=4).delete()

    verdicts_agree_on(4, "sequence gap: expected 4, found 5")


def test_a_deleted_event_with_the_rest_renumbered_and_rehashed_is_named(chain):
    with audit_guards_disabled():
        AuditEvent.objects.filter(sequence=4).delete()
    events = rows_from(5)
    for event in events:
        event.sequence -= 1
    rehash_and_store(events, previous_hash(4))

    verdicts_agree_on(5, "differs from the external checkpoint")


@pytest.mark.parametrize("sequence", [0, -1])
def test_an_event_at_sequence_zero_or_below_is_refused_even_by_the_owner(
    chain, sequence
):
    forged = AuditEvent.objects.get(sequence=1)
    forged.pk = None
    forged.sequence = sequence
    forged.hash = "f" * 64
    with audit_guards_disabled(), pytest.raises(DatabaseError), transaction.atomic():
        forged.save()

    assert not AuditEvent.objects.filter(sequence__lte=0).exists()


def test_an_event_at_sequence_zero_is_named_if_the_owner_drops_the_check(chain):
    forged = AuditEvent.objects.get(sequence=1)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "ALTER TABLE audit_auditevent "
                "DROP CONSTRAINT audit_event_sequence_positive"
            )
        else:
            pytest.skip("SQLite cannot drop a CHECK constraint in place")
    forged.pk = None
    forged.sequence = 0
    forged.action = "document.cancel"
    forged.hash = "f" * 64
    with audit_guards_disabled():
        forged.save()

    verdicts_agree_on(1, "sequence gap: expected 1, found 0")


def test_a_forged_tail_that_replaces_checkpointed_events_is_named(chain):
    events = rows_from(4)
    for event in events:
        event.action = "document.cancelled"
        event.data = {"forged": True}
    rehash_and_store(events, previous_hash(4))

    verdicts_agree_on(5, "differs from the external checkpoint")


def test_truncation_with_the_head_reset_is_named(chain):
    with audit_guards_disabled():
        AuditEvent.objects.all().delete()
        AccessLog.objects.all().delete()
        AuditChainHead.objects.filter(pk=1).update(sequence=0, last_hash=GENESIS_HASH)

    with pytest.raises(
        CommandError,
        match=r"^BROKEN at sequence 1: events are missing: a checkpoint covers "
        r"the chain to sequence 5",
    ):
        audit_verify()


def test_a_head_reset_alone_is_named(chain):
    with audit_guards_disabled():
        AuditChainHead.objects.filter(pk=1).update(sequence=0, last_hash=GENESIS_HASH)

    # No checkpoint can be chained after this (the head names a taken sequence).
    with pytest.raises(
        CommandError, match=r"^BROKEN at sequence 1: events follow the chain head"
    ):
        audit_verify()


def test_an_access_log_row_deleted_with_its_trigger_disabled_is_named(chain):
    with audit_guards_disabled():
        AccessLog.objects.all().delete()

    verdicts_agree_on(3, "recorded here is missing")


def test_an_access_log_row_rewritten_is_named(chain):
    with audit_guards_disabled():
        AccessLog.objects.update(reason="routine")

    verdicts_agree_on(3, "does not match the event that records it")


def test_an_access_log_row_slipped_in_without_an_event_is_reported(chain):
    row = AccessLog.objects.get()
    row.pk = None
    row.save()

    with pytest.raises(CommandError, match=r"^BROKEN in the access log: access log"):
        audit_verify()


def test_an_external_checkpoint_with_a_forged_signature_is_refused(chain):
    [published] = list(chain["directory"].glob("*.json"))
    fields = json.loads(published.read_text())
    forger = Ed25519PrivateKey.generate()
    (chain["directory"] / "forged.json").write_text(
        json.dumps({**fields, "sequence": 7, "signature": fields["signature"]})
    )
    del forger

    with pytest.raises(CommandError, match=r"^BROKEN: checkpoint at sequence 7 has a"):
        audit_verify()


def test_key_rotation_keeps_old_checkpoints_verifying(chain, monkeypatch):
    old_public = public_key_text(
        Ed25519PrivateKey.from_private_bytes(
            __import__("base64").urlsafe_b64decode(
                __import__("os").environ["DOCFLOW_AUDIT_SIGNING_KEY"]
            )
        ).public_key()
    )
    new_key = Ed25519PrivateKey.generate()
    # The documented rotation: the old public key joins the trusted list, the new
    # private key replaces the old one.
    monkeypatch.setenv("DOCFLOW_AUDIT_TRUSTED_PUBLIC_KEYS", old_public)
    monkeypatch.setenv("DOCFLOW_AUDIT_SIGNING_KEY", private_key_text(new_key))
    assert audit_chain_checkpoint().data["signed"] is True

    assert "against 2 external checkpoints" in audit_verify()

    # Without the old public key its checkpoints cannot be trusted.
    monkeypatch.delenv("DOCFLOW_AUDIT_TRUSTED_PUBLIC_KEYS")
    with pytest.raises(CommandError, match="signed by untrusted key"):
        audit_verify()


def test_an_event_appended_after_the_checkpoint_must_still_extend_the_chain(chain):
    newest = AuditEvent.objects.order_by("-sequence").first()
    forged = AuditEvent.objects.get(sequence=newest.sequence)
    forged.pk = None
    forged.sequence = newest.sequence + 2
    forged.hash = "e" * 64
    if connection.vendor != "postgresql":
        pytest.skip("the insert guard is PostgreSQL's")
    with (
        pytest.raises(DatabaseError, match="the chain continues at"),
        transaction.atomic(),
    ):
        forged.save()
