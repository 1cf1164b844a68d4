"""Encrypted payload blobs, named by random UUIDs, in the configured store
(``docflow.payloads.blobstores``: database rows or fsynced files): the one
interface every reader and writer goes through.

Key rotation (``manage.py rotate_keys``) lives here too: it re-seals every stored
blob under the active key, one blob at a time, so it can stop anywhere and run again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count

from audit.services import audit_record
from docflow.models import PayloadVersion
from docflow.payloads.blobstores import (
    DATABASE,
    FILESYSTEM,
    blob_head,
    blob_locate,
    blob_store,
    blobs_locate,
    primary_store,
    stores_in_read_order,
)
from docflow.payloads.encryption import (
    HEADER_BYTES,
    PayloadDecryptionError,
    blob_key_id,
    key_ring,
)

logger = logging.getLogger(__name__)


class PayloadIntegrityError(Exception):
    """Decrypted bytes do not match the checksum recorded when they were stored."""


@dataclass(frozen=True)
class StoredBlob:
    storage_name: str
    key_id: str
    sha256: str
    size_bytes: int


def payload_blob_write(plaintext: bytes) -> StoredBlob:
    """Encrypt and write one blob under a fresh random name, to the configured store.

    Call it inside the transaction that records the row naming the blob: the
    database store inserts it there (and refuses to write outside a transaction);
    the file store has it on disk, fsynced, before it returns."""
    name = f"{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}.bin"
    key_id, blob = key_ring().encrypt(plaintext, associated_data=name.encode())
    primary_store().write(name, blob)
    return StoredBlob(
        storage_name=name,
        key_id=key_id,
        sha256=hashlib.sha256(plaintext).hexdigest(),
        size_bytes=len(plaintext),
    )


# A batch reads its blobs ahead together up to this many bytes in all, so a batch
# of large letters never holds more than this in memory at once.
READ_AHEAD_BYTES = 8 * 1024 * 1024


def payload_blobs_read_ahead(versions: Iterable[PayloadVersion]) -> dict[str, bytes]:
    """The stored (still encrypted) blobs of several versions, read together (one
    SELECT with the database store, instead of one per document) for a batch that
    then opens each with ``payload_blob_read(..., stored=...)``. Versions past
    ``READ_AHEAD_BYTES`` in all, and blobs no store holds, are left out: each is
    read on its own when it is used."""
    names, total = [], 0
    for version in versions:
        if total + version.size_bytes > READ_AHEAD_BYTES:
            break
        total += version.size_bytes
        names.append(version.storage_name)
    return blobs_locate(names) if names else {}


def payload_blob_read(
    *, storage_name: str, expected_sha256: str, stored: bytes | None = None
) -> bytes:
    """Decrypt one blob, from whichever store holds it (or its ``stored`` bytes
    read ahead), and prove it is the bytes we stored. PayloadBlobMissing (a
    FileNotFoundError) when no store holds it."""
    blob = blob_locate(storage_name)[1] if stored is None else stored
    _, plaintext = key_ring().decrypt(blob, associated_data=storage_name.encode())
    if hashlib.sha256(plaintext).hexdigest() != expected_sha256:
        raise PayloadIntegrityError("payload checksum mismatch")
    return plaintext


def payload_blob_delete(storage_name: str) -> None:
    """Remove a blob whose record was never committed (a failed or replayed write).

    Inside a transaction that can only roll back, a database blob goes with the
    rollback; a file is removed at once."""
    for store in stores_in_read_order():
        store.discard([storage_name])


def payload_blobs_purge(storage_names: list[str]) -> None:
    """Remove purged versions' blobs: database rows in the caller's transaction (they
    go when the purge commits), files once it has committed."""
    if not storage_names:
        return
    database, files = blob_store(DATABASE), blob_store(FILESYSTEM)
    for name in storage_names:
        database.delete(name)

    def delete_files() -> None:
        for name in storage_names:
            try:
                files.delete(name)
            except OSError:
                # The record says purged; the blob is encrypted and found again by
                # an operator through the log line (no patient data: a random name).
                logger.exception("could not delete purged payload blob %s", name)

    transaction.on_commit(delete_files)


def payload_blob_key_id(storage_name: str) -> str:
    """The key a stored blob is sealed under, from its header alone."""
    return blob_key_id(blob_head(storage_name, HEADER_BYTES))


def payload_blob_reseal(*, storage_name: str, expected_sha256: str) -> StoredBlob:
    """Re-encrypt one blob under the active key, proving its checksum first; it keeps
    its name and its store. A database blob is rewritten in the caller's
    transaction; a file is swapped atomically (a crash leaves old or new)."""
    store, blob = blob_locate(storage_name)
    _, plaintext = key_ring().decrypt(blob, associated_data=storage_name.encode())
    if hashlib.sha256(plaintext).hexdigest() != expected_sha256:
        raise PayloadIntegrityError("payload checksum mismatch")
    key_id, sealed = key_ring().encrypt(
        plaintext, associated_data=storage_name.encode()
    )
    store.replace(storage_name, sealed)
    return StoredBlob(
        storage_name=storage_name,
        key_id=key_id,
        sha256=expected_sha256,
        size_bytes=len(plaintext),
    )


class Rekeyed:
    """What re-keying one payload version did."""

    RESEALED = "re-encrypted"
    CURRENT = "already current"
    FAILED = "failed"
    GONE = "purged"


@dataclass
class RotationReport:
    active_key_id: str
    resealed: int = 0
    current: int = 0
    failed: int = 0
    failed_versions: list[str] = field(default_factory=list)
    interrupted: bool = False

    def as_audit_data(self) -> dict:
        return {
            "active_key_id": self.active_key_id,
            "re_encrypted": self.resealed,
            "already_current": self.current,
            "failed": self.failed,
            # Public ids of payload versions: never content or patient details.
            "failed_versions": self.failed_versions[:100],
            "interrupted": self.interrupted,
        }


@transaction.atomic
def payload_version_rekey(*, version_id: int) -> str:
    """Seal one unpurged version's blob under the active key; once only.

    The blob header decides (a run killed between swap and commit left the record
    behind the blob); the record's key id is then brought up to date.
    """
    version = (
        PayloadVersion.objects.select_for_update()
        .filter(pk=version_id, purged_at__isnull=True)
        .first()
    )
    if version is None:
        return Rekeyed.GONE  # purged since the batch was listed
    active = key_ring().active_key_id
    if payload_blob_key_id(version.storage_name) == active:
        if version.key_id != active:
            version.key_id = active
            version.save(update_fields=["key_id"])
        return Rekeyed.CURRENT
    blob = payload_blob_reseal(
        storage_name=version.storage_name, expected_sha256=version.sha256
    )
    version.key_id = blob.key_id
    version.save(update_fields=["key_id"])
    return Rekeyed.RESEALED


def payload_keys_rotate(
    *,
    batch_size: int = 200,
    on_progress: Callable[[int], None] | None = None,
    actor=None,
) -> RotationReport:
    """Re-encrypt every stored payload under the active key, in batches; audited.

    Resumable: versions already under the active key are counted and skipped.
    Each batch is one transaction with its own audit event; one more records the
    run's counts, also when the run is interrupted.
    """
    report = RotationReport(active_key_id=key_ring().active_key_id)
    pending = PayloadVersion.objects.filter(purged_at__isnull=True).order_by("pk")
    last_pk = 0
    try:
        while True:
            batch = list(
                pending.filter(pk__gt=last_pk).values_list("pk", "public_id")[
                    :batch_size
                ]
            )
            if not batch:
                break
            # One transaction per batch, audited in it: the batch's re-keyed rows
            # and its audit event commit together or not at all.
            counts = (report.resealed, report.current, report.failed)
            with transaction.atomic():
                for pk, public_id in batch:
                    try:
                        outcome = payload_version_rekey(version_id=pk)
                    except (
                        PayloadDecryptionError,
                        PayloadIntegrityError,
                        OSError,
                    ):
                        outcome = Rekeyed.FAILED
                        report.failed_versions.append(str(public_id))
                    if outcome == Rekeyed.RESEALED:
                        report.resealed += 1
                    elif outcome == Rekeyed.CURRENT:
                        report.current += 1
                    elif outcome == Rekeyed.FAILED:
                        report.failed += 1
                    if on_progress is not None:
                        on_progress(1)
                audit_record(
                    action="payload.keys_rotated_batch",
                    target_type="payload_store",
                    target_id=report.active_key_id,
                    data={
                        "active_key_id": report.active_key_id,
                        "first_version": str(batch[0][1]),
                        "last_version": str(batch[-1][1]),
                        "re_encrypted": report.resealed - counts[0],
                        "already_current": report.current - counts[1],
                        "failed": report.failed - counts[2],
                    },
                    actor=actor,
                )
            last_pk = batch[-1][0]
    except BaseException:
        report.interrupted = True
        raise
    finally:
        audit_record(
            action="payload.keys_rotated",
            target_type="payload_store",
            target_id=report.active_key_id,
            data=report.as_audit_data(),
            actor=actor,
        )
    return report


def payload_key_ids_in_use() -> dict[str, int]:
    """How many unpurged versions each key id still seals (per the records)."""
    rows = (
        PayloadVersion.objects.filter(purged_at__isnull=True)
        .values("key_id")
        .annotate(count=Count("id"))
        .order_by("key_id")
    )
    return {row["key_id"]: row["count"] for row in rows}
