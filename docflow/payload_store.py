"""Encrypted payload blobs in the ``payloads`` storage, named by random UUIDs."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import storages

from docflow.encryption import key_ring


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
