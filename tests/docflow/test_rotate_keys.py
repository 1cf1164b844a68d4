"""Acceptance 3: key rotation re-seals every payload; old keys can then go.

After ``rotate_keys`` and removal of the old key, copies of the old ciphertexts no
longer open, every payload still decrypts, and a marker inside the payloads appears
in plaintext nowhere: not in the storage directory, not in any database row.
"""

from __future__ import annotations

import base64
import io
import os

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditEvent
from docflow.models import DocumentStatus, PayloadStage, PayloadVersion
from docflow.payloads import blobstores
from docflow.payloads.encryption import KeyRing, PayloadDecryptionError
from docflow.payloads.store import payload_blob_read
from docflow.preparation import document_prepare
from tests.factories import OrganisationFactory, submit_document
from tests.samples import pdf_bytes

pytestmark = pytest.mark.django_db

MARKER = "ROTATION-MARKER-Qxv7Zzyzx"


def key_spec(key_id: str, seed: int) -> str:
    key = bytes((seed * 7 + i) % 256 for i in range(32))
    return f"{key_id}:{base64.urlsafe_b64encode(key).decode()}"


OLD = key_spec("k2025", 3)
NEW = key_spec("k2026", 211)


def html_letter() -> bytes:
    return (
        b"<!DOCTYPE html><html><body><p>Dear Dr Example</p><p>"
        + MARKER.encode()
        + b"</p></body></html>"
    )


@pytest.fixture
def stored_under_old_key(settings, filesystem_payload_store):
    """Five documents under the old key: four PDFs and one converted HTML letter,
    as files (these tests look at them; tests/docflow/test_payload_stores.py
    rotates the database store)."""
    settings.DOCFLOW_PAYLOAD_KEYS = OLD
    OrganisationFactory(ods_code="A81001")
    for number in range(4):
        submit_document(content=pdf_bytes(f"{MARKER} letter {number}"))
    converted = submit_document(content=html_letter(), declared_extension="html")
    assert document_prepare(document_id=converted.pk).document.status == (
        DocumentStatus.READY
    )
    versions = list(PayloadVersion.objects.order_by("pk"))
    assert len(versions) == 6
    assert {v.stage for v in versions} == {
        PayloadStage.ORIGINAL,
        PayloadStage.CONVERTED,
    }
    assert {v.key_id for v in versions} == {"k2025"}
    return versions


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command(
        "rotate_keys", "--no-progress", *args, stdout=out, stderr=io.StringIO()
    )
    return out.getvalue()


def blob_bytes(payload_dir, version: PayloadVersion) -> bytes:
    return (payload_dir / version.storage_name).read_bytes()


def every_text_in_the_database() -> str:
    """Every row of every table, as text (bytes decoded leniently)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # Table names come from the schema itself, quoted.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks.append(bytes(value).decode("latin-1"))
                    elif value is not None:
                        chunks.append(str(value))
    return "\n".join(chunks)


def every_byte_in_storage(payload_dir) -> bytes:
    return b"".join(p.read_bytes() for p in payload_dir.rglob("*") if p.is_file())


def test_rotation_then_key_removal_leaves_old_copies_unreadable_and_all_payloads_readable(  # noqa: E501
    settings, stored_under_old_key, filesystem_payload_store
):
    versions = stored_under_old_key
    plaintexts = {
        v.pk: payload_blob_read(storage_name=v.storage_name, expected_sha256=v.sha256)
        for v in versions
    }
    old_copies = {v.pk: blob_bytes(filesystem_payload_store, v) for v in versions}
    assert sum(MARKER.encode() in text for text in plaintexts.values()) >= 5

    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    output = rotate()
    settings.DOCFLOW_PAYLOAD_KEYS = NEW  # the old key is removed

    assert "6 re-encrypted, 0 already current, 0 failed" in output
    assert "k2025; it can be removed" in output
    new_ring = KeyRing.parse(NEW)
    for version in PayloadVersion.objects.order_by("pk"):
        assert version.key_id == "k2026"
        assert (
            payload_blob_read(
                storage_name=version.storage_name, expected_sha256=version.sha256
            )
            == plaintexts[version.pk]
        )
        current = blob_bytes(filesystem_payload_store, version)
        assert current != old_copies[version.pk]
        with pytest.raises(PayloadDecryptionError, match="not in the key ring"):
            new_ring.decrypt(
                old_copies[version.pk],
                associated_data=version.storage_name.encode(),
            )
    # An old copy put back in place is refused, not read.
    restored = versions[0]
    (filesystem_payload_store / restored.storage_name).write_bytes(
        old_copies[restored.pk]
    )
    with pytest.raises(PayloadDecryptionError):
        payload_blob_read(
            storage_name=restored.storage_name, expected_sha256=restored.sha256
        )
    [event] = AuditEvent.objects.filter(action="payload.keys_rotated")
    assert event.data["re_encrypted"] == 6
    assert event.data["already_current"] == 0
    assert event.data["failed"] == 0
    assert event.target_id == "k2026"


def test_marker_is_in_no_stored_file_and_no_database_row_before_or_after_rotation(
    settings, stored_under_old_key, filesystem_payload_store
):
    # The scans can find things: patient metadata is in the database as expected.
    database = every_text_in_the_database()
    assert "Testpatient" in database
    assert MARKER not in database
    assert MARKER.encode() not in every_byte_in_storage(filesystem_payload_store)

    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    rotate()
    settings.DOCFLOW_PAYLOAD_KEYS = NEW

    stored = every_byte_in_storage(filesystem_payload_store)
    assert MARKER.encode() not in stored
    assert b".rotating" not in b"".join(
        str(p).encode() for p in filesystem_payload_store.rglob("*")
    )
    assert MARKER not in every_text_in_the_database()
    assert len(list(filesystem_payload_store.rglob("*.bin"))) == 6


def test_second_run_finds_everything_current_and_changes_nothing(
    settings, stored_under_old_key, filesystem_payload_store
):
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    rotate()
    after_first = {
        v.pk: blob_bytes(filesystem_payload_store, v)
        for v in PayloadVersion.objects.all()
    }

    output = rotate("--batch-size", "2")

    assert "0 re-encrypted, 6 already current, 0 failed" in output
    assert {
        v.pk: blob_bytes(filesystem_payload_store, v)
        for v in PayloadVersion.objects.all()
    } == after_first
    assert AuditEvent.objects.filter(action="payload.keys_rotated").count() == 2


def test_interrupted_run_leaves_whole_blobs_and_a_second_run_finishes(
    settings, stored_under_old_key, filesystem_payload_store, monkeypatch
):
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    real_replace = os.replace
    swaps = []

    def killed_on_third_swap(source, target):
        # The new blob is fully written beside the old one; the process dies
        # before the swap.
        if len(swaps) == 2:
            raise KeyboardInterrupt
        swaps.append(target)
        real_replace(source, target)

    monkeypatch.setattr(blobstores.os, "replace", killed_on_third_swap)
    with pytest.raises(KeyboardInterrupt):
        rotate("--batch-size", "2")
    monkeypatch.setattr(blobstores.os, "replace", real_replace)

    by_key = {}
    for version in PayloadVersion.objects.order_by("pk"):
        # Every blob is whole and readable with the ring in use during rotation.
        payload_blob_read(
            storage_name=version.storage_name, expected_sha256=version.sha256
        )
        by_key.setdefault(version.key_id, 0)
        by_key[version.key_id] += 1
    assert by_key == {"k2026": 2, "k2025": 4}
    assert not list(filesystem_payload_store.rglob("*.tmp"))
    [interrupted] = AuditEvent.objects.filter(action="payload.keys_rotated")
    assert interrupted.data["interrupted"] is True
    assert interrupted.data["re_encrypted"] == 2

    output = rotate()

    assert "4 re-encrypted, 2 already current, 0 failed" in output
    settings.DOCFLOW_PAYLOAD_KEYS = NEW
    for version in PayloadVersion.objects.all():
        assert version.key_id == "k2026"
        payload_blob_read(
            storage_name=version.storage_name, expected_sha256=version.sha256
        )


def test_a_record_behind_its_blob_is_caught_up_from_the_blob_header(
    settings, stored_under_old_key, filesystem_payload_store
):
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    rotate()
    # As if a run was killed after the swap but before its commit.
    PayloadVersion.objects.filter(pk=stored_under_old_key[0].pk).update(key_id="k2025")
    before = blob_bytes(filesystem_payload_store, stored_under_old_key[0])

    output = rotate()

    assert "0 re-encrypted, 6 already current, 0 failed" in output
    version = PayloadVersion.objects.get(pk=stored_under_old_key[0].pk)
    assert version.key_id == "k2026"
    assert blob_bytes(filesystem_payload_store, version) == before


def test_unreadable_blobs_are_counted_failed_and_the_command_exits_non_zero(
    settings, stored_under_old_key, filesystem_payload_store
):
    broken, missing = stored_under_old_key[1], stored_under_old_key[2]
    path = filesystem_payload_store / broken.storage_name
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (filesystem_payload_store / missing.storage_name).unlink()
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="2 payload blob"):
        call_command("rotate_keys", "--no-progress", stdout=out, stderr=err)

    assert "4 re-encrypted, 0 already current, 2 failed" in out.getvalue()
    assert str(broken.public_id) in err.getvalue()
    [event] = AuditEvent.objects.filter(action="payload.keys_rotated")
    assert event.data["failed"] == 2
    assert set(event.data["failed_versions"]) == {
        str(broken.public_id),
        str(missing.public_id),
    }
    assert PayloadVersion.objects.get(pk=broken.pk).key_id == "k2025"


def test_purged_versions_are_not_touched(settings, stored_under_old_key):
    from django.utils import timezone

    purged = stored_under_old_key[0]
    PayloadVersion.objects.filter(pk=purged.pk).update(purged_at=timezone.now())
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"

    output = rotate()

    assert "5 re-encrypted, 0 already current, 0 failed" in output
    assert PayloadVersion.objects.get(pk=purged.pk).key_id == "k2025"
