"""Encrypted payload blobs in the ``payloads`` storage, named by random UUIDs.

Key rotation (``manage.py rotate_keys``) lives here too: it re-seals every stored
blob under the active key, one blob at a time, so it can stop anywhere and run again.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Count

from audit.services import audit_record
from docflow.models import PayloadVersion
from docflow.payloads.encryption import (
    HEADER_BYTES,
    PayloadDecryptionError,
    blob_key_id,
    key_ring,
)


class PayloadIntegrityError(Exception):
    """Decrypted bytes do not match the checksum recorded when they were stored."""


@dataclass(frozen=True)
class StoredBlob:
    storage_name: str
    key_id: str
    sha256: str
    size_bytes: int


def _storage():
    return storages["payloads"]


def payload_blob_write(plaintext: bytes) -> StoredBlob:
    """Encrypt and write one blob under a fresh random name."""
    name = f"{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}.bin"
    key_id, blob = key_ring().encrypt(plaintext, associated_data=name.encode())
    saved = _storage().save(name, ContentFile(blob))
    return StoredBlob(
        storage_name=saved,
        key_id=key_id,
        sha256=hashlib.sha256(plaintext).hexdigest(),
        size_bytes=len(plaintext),
    )


def payload_blob_read(*, storage_name: str, expected_sha256: str) -> bytes:
    """Decrypt one blob and prove it is the bytes we stored."""
    with _storage().open(storage_name, "rb") as handle:
        blob = handle.read()
    _, plaintext = key_ring().decrypt(blob, associated_data=storage_name.encode())
    if hashlib.sha256(plaintext).hexdigest() != expected_sha256:
        raise PayloadIntegrityError("payload checksum mismatch")
    return plaintext


def payload_blob_delete(storage_name: str) -> None:
    """Remove a blob (used when the record that would own it was never committed)."""
    storage = _storage()
    if storage.exists(storage_name):
        storage.delete(storage_name)


def payload_blob_key_id(storage_name: str) -> str:
    """The key a stored blob is sealed under, from its header alone."""
    with _storage().open(storage_name, "rb") as handle:
        return blob_key_id(handle.read(HEADER_BYTES))


def _local_path(storage_name: str) -> str | None:
    try:
        return _storage().path(storage_name)
    except NotImplementedError:  # object storage: no local file to swap
        return None


def _replace_atomically(path: str, blob: bytes) -> None:
    """Write beside the blob, then rename over it: a reader or a crash sees the old
    blob or the new one, never half of either."""
    temporary = f"{path}.rotating"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def payload_blob_reseal(*, storage_name: str, expected_sha256: str) -> StoredBlob:
    """Re-encrypt one blob under the active key, proving its checksum first.

    On a local file system the blob keeps its name and is swapped in place. On
    object storage a new blob is written under a new name; the caller points the
    record at it and deletes the old one after commit.
    """
    plaintext = payload_blob_read(
        storage_name=storage_name, expected_sha256=expected_sha256
    )
    path = _local_path(storage_name)
    if path is None:
        return payload_blob_write(plaintext)
    key_id, blob = key_ring().encrypt(plaintext, associated_data=storage_name.encode())
    _replace_atomically(path, blob)
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
    old_name = version.storage_name
    blob = payload_blob_reseal(storage_name=old_name, expected_sha256=version.sha256)
    version.key_id = blob.key_id
    version.storage_name = blob.storage_name
    version.save(update_fields=["key_id", "storage_name"])
    if blob.storage_name != old_name:
        transaction.on_commit(lambda: payload_blob_delete(old_name))
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
