"""Payloads without local state (issue 19, acceptance 2).

The database store: a blob is written in the transaction that records its payload
version, so a rollback leaves nothing and a committed version always reads back;
purge, key rotation and ``payloads_move`` work on it. The file store fsyncs the
file and its directory before the row naming the blob is inserted. These run on
SQLite and on PostgreSQL (DATABASE_URL); the column-storage test on PostgreSQL only.
"""

from __future__ import annotations

import base64
import datetime
import io
import os

import psycopg
import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import TestCase

from docflow import services
from docflow.models import Document, PayloadBlob, PayloadVersion
from docflow.payloads import blobstores
from docflow.payloads.blobstores import PayloadBlobMissing, PayloadStoreError
from docflow.payloads.encryption import PayloadDecryptionError
from docflow.payloads.store import (
    payload_blob_delete,
    payload_blob_key_id,
    payload_blob_read,
    payload_blob_write,
)
from docflow.services import document_cancel
from governance.retention import payload_purge_due
from tests.factories import OrganisationFactory, submit_document
from tests.samples import pdf_bytes

MARKER = "STORE-MARKER-Zq81xw"


def key_spec(key_id: str, seed: int) -> str:
    key = bytes((seed * 5 + i) % 256 for i in range(32))
    return f"{key_id}:{base64.urlsafe_b64encode(key).decode()}"


OLD = key_spec("s2025", 9)
NEW = key_spec("s2026", 101)


class Boom(Exception):
    pass


def files_in(directory) -> list:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def blob_rows_seen_by_another_connection() -> set[str]:
    """What a second client sees committed (PostgreSQL), or this one (SQLite)."""
    if connection.vendor != "postgresql":
        return set(PayloadBlob.objects.values_list("name", flat=True))
    params = connection.get_connection_params()
    dsn = {
        key: params[key]
        for key in ("host", "port", "user", "password", "dbname")
        if params.get(key)
    }
    with psycopg.connect(**dsn) as other:
        return {row[0] for row in other.execute("SELECT name FROM docflow_payloadblob")}


# --- the database store: same transaction as the version row ------------------


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_after_the_blob_write_leaves_nothing(
    database_payload_store, _payloads_in_tmp
):
    with pytest.raises(Boom), transaction.atomic():
        stored = payload_blob_write(pdf_bytes(MARKER))
        # Written, inside the transaction...
        assert PayloadBlob.objects.filter(name=stored.storage_name).exists()
        raise Boom

    assert not PayloadBlob.objects.exists()
    assert blob_rows_seen_by_another_connection() == set()
    assert files_in(_payloads_in_tmp) == []
    with pytest.raises(PayloadBlobMissing):
        payload_blob_read(storage_name=stored.storage_name, expected_sha256="0")


@pytest.mark.django_db(transaction=True)
def test_intake_failing_after_the_blob_write_stores_nothing(
    database_payload_store, _payloads_in_tmp, monkeypatch, reference_data
):
    def audit_fails(**kwargs):
        # After the blob, the document and the version rows: the last write.
        assert PayloadBlob.objects.count() == 1
        assert PayloadVersion.objects.count() == 1
        raise Boom

    monkeypatch.setattr(services, "audit_record", audit_fails)
    with pytest.raises(Boom):
        submit_document(content=pdf_bytes(MARKER))

    assert Document.objects.count() == 0
    assert PayloadVersion.objects.count() == 0
    assert not PayloadBlob.objects.exists()
    assert blob_rows_seen_by_another_connection() == set()
    assert files_in(_payloads_in_tmp) == []


@pytest.mark.django_db(transaction=True)
def test_a_replayed_submission_leaves_no_second_blob(
    database_payload_store, reference_data
):
    first = submit_document(content=pdf_bytes(MARKER), key="same-event")
    again = submit_document(content=pdf_bytes(MARKER), key="same-event")

    assert again.pk == first.pk
    [version] = PayloadVersion.objects.all()
    assert blob_rows_seen_by_another_connection() == {version.storage_name}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_discarding_in_a_failed_transaction_leaves_it_to_the_rollback(
    database_payload_store,
):
    with pytest.raises(DatabaseError), transaction.atomic():
        stored = payload_blob_write(b"%PDF-1.7 letter")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        except DatabaseError:
            # The transaction can only roll back now: discarding must not mask
            # the failure with one of its own.
            payload_blob_delete(stored.storage_name)
            raise

    assert blob_rows_seen_by_another_connection() == set()


@pytest.mark.django_db(transaction=True)
def test_writing_a_database_blob_outside_a_transaction_is_refused(
    database_payload_store,
):
    with pytest.raises(PayloadStoreError):
        payload_blob_write(b"%PDF-1.7 letter")
    assert not PayloadBlob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_every_committed_version_reads_back_from_its_row(
    database_payload_store, _payloads_in_tmp, reference_data
):
    contents = [pdf_bytes(f"{MARKER} {number}") for number in range(5)]
    for content in contents:
        submit_document(content=content)

    versions = list(PayloadVersion.objects.order_by("pk"))
    assert len(versions) == 5
    assert blob_rows_seen_by_another_connection() == {v.storage_name for v in versions}
    assert [
        payload_blob_read(storage_name=v.storage_name, expected_sha256=v.sha256)
        for v in versions
    ] == contents
    # Nothing on disk, and the rows hold ciphertext only.
    assert files_in(_payloads_in_tmp) == []
    for row in PayloadBlob.objects.all():
        assert MARKER.encode() not in bytes(row.ciphertext)


@pytest.mark.django_db
def test_a_tampered_row_fails_to_decrypt(database_payload_store):
    stored = payload_blob_write(pdf_bytes(MARKER))
    row = PayloadBlob.objects.get(name=stored.storage_name)
    damaged = bytearray(bytes(row.ciphertext))
    damaged[len(damaged) // 2] ^= 0x01
    PayloadBlob.objects.filter(name=row.name).update(ciphertext=bytes(damaged))

    with pytest.raises(PayloadDecryptionError):
        payload_blob_read(
            storage_name=stored.storage_name, expected_sha256=stored.sha256
        )


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_ciphertext_column_is_stored_external_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute "
            "WHERE attrelid = 'docflow_payloadblob'::regclass "
            "AND attname = 'ciphertext'"
        )
        assert cursor.fetchone()[0] == "e"


def test_the_default_store_follows_the_database_engine():
    expected = (
        "database"
        if django_settings.DATABASES["default"]["ENGINE"]
        == "django.db.backends.postgresql"
        else "filesystem"
    )
    assert expected == django_settings.DOCFLOW_PAYLOAD_STORE


# --- purge and key rotation on the database store ----------------------------

T0 = datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.UTC)


@pytest.mark.django_db
def test_purge_deletes_the_row_in_the_purging_transaction(
    database_payload_store, settings
):
    settings.DOCFLOW_RETENTION_FINISHED_DAYS = 90
    OrganisationFactory(ods_code="A81001")
    with time_machine.travel(T0, tick=False):
        kept = submit_document(content=pdf_bytes("kept"))
        gone = submit_document(content=pdf_bytes(MARKER))
        document_cancel(document=gone, reason="withdrawn", actor=None)
    [kept_version] = PayloadVersion.objects.filter(document=kept)
    [gone_version] = PayloadVersion.objects.filter(document=gone)
    due = T0 + datetime.timedelta(days=90)

    # No on-commit callback runs: the rows go with the purge's own writes.
    with time_machine.travel(due, tick=False), TestCase.captureOnCommitCallbacks():
        report = payload_purge_due()

    assert report.purged == {"finished": 1}
    gone_version.refresh_from_db()
    assert gone_version.purged_at == due
    assert not PayloadBlob.objects.filter(name=gone_version.storage_name).exists()
    assert payload_blob_read(
        storage_name=kept_version.storage_name, expected_sha256=kept_version.sha256
    ) == pdf_bytes("kept")


@pytest.fixture
def rows_under_old_key(settings, database_payload_store):
    settings.DOCFLOW_PAYLOAD_KEYS = OLD
    OrganisationFactory(ods_code="A81001")
    for number in range(5):
        submit_document(content=pdf_bytes(f"{MARKER} {number}"))
    versions = list(PayloadVersion.objects.order_by("pk"))
    assert {v.key_id for v in versions} == {"s2025"}
    return versions


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command(
        "rotate_keys", "--no-progress", *args, stdout=out, stderr=io.StringIO()
    )
    return out.getvalue()


@pytest.mark.django_db
def test_key_rotation_reseals_every_row_and_old_copies_stop_opening(
    settings, rows_under_old_key
):
    old_rows = {row.name: bytes(row.ciphertext) for row in PayloadBlob.objects.all()}
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"

    output = rotate("--batch-size", "2")

    assert "5 re-encrypted, 0 already current, 0 failed" in output
    settings.DOCFLOW_PAYLOAD_KEYS = NEW
    for version in PayloadVersion.objects.all():
        assert version.key_id == "s2026"
        assert payload_blob_key_id(version.storage_name) == "s2026"
        assert MARKER.encode() in payload_blob_read(
            storage_name=version.storage_name, expected_sha256=version.sha256
        )
        assert (
            bytes(PayloadBlob.objects.get(name=version.storage_name).ciphertext)
            != (old_rows[version.storage_name])
        )
    # An old row put back no longer opens once the old key is gone.
    name, old = next(iter(old_rows.items()))
    PayloadBlob.objects.filter(name=name).update(ciphertext=old)
    version = PayloadVersion.objects.get(storage_name=name)
    with pytest.raises(PayloadDecryptionError):
        payload_blob_read(storage_name=name, expected_sha256=version.sha256)


@pytest.mark.django_db
def test_an_interrupted_rotation_keeps_rows_and_records_together(
    settings, rows_under_old_key, monkeypatch
):
    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    real_replace = blobstores.DatabaseBlobStore.replace
    calls = []

    def killed_on_the_fourth(self, name, blob):
        calls.append(name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_replace(self, name, blob)

    monkeypatch.setattr(blobstores.DatabaseBlobStore, "replace", killed_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        rotate("--batch-size", "2")
    monkeypatch.setattr(blobstores.DatabaseBlobStore, "replace", real_replace)

    # The first batch (2) committed; the second rolled back whole: every record's
    # key id is its row's header.
    by_key = {}
    for version in PayloadVersion.objects.all():
        assert payload_blob_key_id(version.storage_name) == version.key_id
        by_key[version.key_id] = by_key.get(version.key_id, 0) + 1
    assert by_key == {"s2026": 2, "s2025": 3}

    assert "3 re-encrypted, 2 already current, 0 failed" in rotate()


# --- the move command ----------------------------------------------------------


def move(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("payloads_move", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_move_to_the_database_and_back(
    settings, filesystem_payload_store, reference_data
):
    contents = [pdf_bytes(f"{MARKER} {number}") for number in range(5)]
    for content in contents:
        submit_document(content=content)
    versions = list(PayloadVersion.objects.order_by("pk"))
    assert len(files_in(filesystem_payload_store)) == 5

    settings.DOCFLOW_PAYLOAD_STORE = "database"
    out, err = move("--to", "database", "--batch-size", "2", "--no-progress")

    assert "5 moved from filesystem to database" in out
    assert "moved to database: 5/5 blobs looked at" in err
    assert files_in(filesystem_payload_store) == []
    assert set(PayloadBlob.objects.values_list("name", flat=True)) == {
        v.storage_name for v in versions
    }
    assert [
        payload_blob_read(storage_name=v.storage_name, expected_sha256=v.sha256)
        for v in versions
    ] == contents

    settings.DOCFLOW_PAYLOAD_STORE = "filesystem"
    out, _ = move("--to", "filesystem", "--batch-size", "3")

    assert "5 moved from database to filesystem" in out
    assert not PayloadBlob.objects.exists()
    assert {
        p.relative_to(filesystem_payload_store).as_posix()
        for p in files_in(filesystem_payload_store)
    } == {v.storage_name for v in versions}
    assert [
        payload_blob_read(storage_name=v.storage_name, expected_sha256=v.sha256)
        for v in versions
    ] == contents


@pytest.mark.django_db
def test_an_interrupted_move_loses_nothing_and_a_rerun_finishes(
    settings, filesystem_payload_store, reference_data, monkeypatch
):
    contents = [pdf_bytes(f"{MARKER} {number}") for number in range(6)]
    for content in contents:
        submit_document(content=content)
    versions = list(PayloadVersion.objects.order_by("pk"))
    settings.DOCFLOW_PAYLOAD_STORE = "database"
    real_delete = blobstores.FileBlobStore.delete_if_unchanged
    removed = []

    def killed_on_the_fourth_removal(self, name, blob):
        # Copied and committed to the database; the process dies before the
        # file goes.
        if len(removed) == 3:
            raise KeyboardInterrupt
        removed.append(name)
        return real_delete(self, name, blob)

    monkeypatch.setattr(
        blobstores.FileBlobStore, "delete_if_unchanged", killed_on_the_fourth_removal
    )
    with pytest.raises(KeyboardInterrupt):
        move("--to", "database", "--batch-size", "2", "--no-progress")
    monkeypatch.setattr(blobstores.FileBlobStore, "delete_if_unchanged", real_delete)

    # Every version still reads back, from one store or the other.
    assert len(files_in(filesystem_payload_store)) == 3
    assert PayloadBlob.objects.count() == 4
    assert [
        payload_blob_read(storage_name=v.storage_name, expected_sha256=v.sha256)
        for v in versions
    ] == contents

    out, _ = move("--to", "database", "--no-progress")

    assert "3 moved from filesystem to database" in out
    assert files_in(filesystem_payload_store) == []
    assert PayloadBlob.objects.count() == 6
    assert [
        payload_blob_read(storage_name=v.storage_name, expected_sha256=v.sha256)
        for v in versions
    ] == contents


@pytest.mark.django_db
def test_a_blob_that_does_not_verify_is_not_moved(
    settings, filesystem_payload_store, reference_data
):
    good = submit_document(content=pdf_bytes("good"))
    bad = submit_document(content=pdf_bytes("bad"))
    [bad_version] = PayloadVersion.objects.filter(document=bad)
    path = filesystem_payload_store / bad_version.storage_name
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0x01
    path.write_bytes(bytes(damaged))
    settings.DOCFLOW_PAYLOAD_STORE = "database"

    with pytest.raises(Exception, match="could not be moved"):
        move("--to", "database", "--no-progress")

    [good_version] = PayloadVersion.objects.filter(document=good)
    assert set(PayloadBlob.objects.values_list("name", flat=True)) == {
        good_version.storage_name
    }
    assert path.read_bytes() == bytes(damaged)


# --- the file store: fsync before the row commits ------------------------------


@pytest.mark.django_db
def test_the_file_store_fsyncs_file_and_directory_before_the_version_row(
    filesystem_payload_store, monkeypatch, reference_data
):
    events: list[tuple] = []
    real_fsync = os.fsync

    def observed_fsync(descriptor):
        info = os.fstat(descriptor)
        events.append(
            ("fsync", info.st_ino, os.path.realpath(f"/proc/self/fd/{descriptor}"))
        )
        return real_fsync(descriptor)

    real_link = os.link

    def observed_link(source, target, *args, **kwargs):
        # The file store links the fsynced temporary file into place (a rename
        # that never overwrites).
        events.append(("rename", str(target)))
        return real_link(source, target, *args, **kwargs)

    def statements(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith('INSERT INTO "DOCFLOW_PAYLOADVERSION"'):
            events.append(("insert version",))
        return execute(sql, params, many, context)

    monkeypatch.setattr(blobstores.os, "fsync", observed_fsync)
    monkeypatch.setattr(blobstores.os, "link", observed_link)
    with connection.execute_wrapper(statements):
        document = submit_document(content=pdf_bytes(MARKER))

    [version] = PayloadVersion.objects.filter(document=document)
    path = filesystem_payload_store / version.storage_name
    kinds = [event[0] for event in events]
    insert_at = kinds.index("insert version")
    before = events[:insert_at]
    file_inode = os.stat(path).st_ino
    directory_inode = os.stat(path.parent).st_ino
    fsynced = [event[1] for event in before if event[0] == "fsync"]
    assert file_inode in fsynced and directory_inode in fsynced
    # Temporary file fsynced, renamed into place, directory fsynced: all before
    # the version row is inserted (so before it commits).
    rename_at = kinds.index("rename")
    file_sync = next(
        i for i, e in enumerate(before) if e[0] == "fsync" and e[1] == file_inode
    )
    directory_sync = max(
        i for i, e in enumerate(before) if e[0] == "fsync" and e[1] == directory_inode
    )
    assert file_sync < rename_at < directory_sync < insert_at
    assert events[rename_at][1] == str(path)


# --- reading a batch's blobs ahead ---------------------------------------------


def _written_versions(count: int, size: int = 1000) -> list[PayloadVersion]:
    versions = []
    for number in range(count):
        plaintext = f"read ahead {number} ".encode() * (size // 14)
        stored = payload_blob_write(plaintext)
        versions.append(
            PayloadVersion(
                storage_name=stored.storage_name,
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
            )
        )
    return versions


@pytest.mark.django_db
def test_a_batch_s_blobs_are_read_ahead_in_one_select_with_the_database_store(
    database_payload_store,
):
    from django.test.utils import CaptureQueriesContext

    from docflow.payloads.store import payload_blobs_read_ahead

    with transaction.atomic():
        versions = _written_versions(5)
    with CaptureQueriesContext(connection) as captured:
        stored = payload_blobs_read_ahead(versions)
    assert len(captured.captured_queries) == 1
    assert set(stored) == {v.storage_name for v in versions}
    for number, version in enumerate(versions):
        plaintext = payload_blob_read(
            storage_name=version.storage_name,
            expected_sha256=version.sha256,
            stored=stored[version.storage_name],
        )
        assert plaintext.startswith(f"read ahead {number} ".encode())


@pytest.mark.django_db
def test_read_ahead_stops_at_its_byte_budget_and_skips_blobs_no_store_holds(
    database_payload_store, monkeypatch
):
    from docflow.payloads import store

    with transaction.atomic():
        versions = _written_versions(4, size=1000)
    monkeypatch.setattr(store, "READ_AHEAD_BYTES", 2 * versions[0].size_bytes)
    missing = PayloadVersion(storage_name="ab/" + "0" * 32 + ".bin", size_bytes=1)
    stored = store.payload_blobs_read_ahead([missing, *versions])
    # The missing one counts against the budget but is absent; one more fits.
    assert set(stored) == {versions[0].storage_name}
    # Those left out still read on their own.
    assert payload_blob_read(
        storage_name=versions[3].storage_name, expected_sha256=versions[3].sha256
    ).startswith(b"read ahead 3 ")


@pytest.mark.django_db
def test_read_ahead_finds_blobs_in_the_other_store_during_a_move(
    filesystem_payload_store, settings
):
    from docflow.payloads.store import payload_blobs_read_ahead

    with transaction.atomic():
        on_disk = _written_versions(2)
    settings.DOCFLOW_PAYLOAD_STORE = "database"
    with transaction.atomic():
        in_rows = _written_versions(2)
    stored = payload_blobs_read_ahead(on_disk + in_rows)
    assert set(stored) == {v.storage_name for v in on_disk + in_rows}
