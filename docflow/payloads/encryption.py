"""Authenticated encryption of payload bytes at rest (AES-256-GCM, named keys).

Blob layout: ``b"DFP1" | len(key_id) | key_id | 12-byte nonce | ciphertext+tag``.
The storage name is bound in as associated data, so a blob copied onto another
record's name fails to decrypt instead of yielding the wrong document.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MAGIC = b"DFP1"
NONCE_BYTES = 12
TAG_BYTES = 16


class PayloadDecryptionError(Exception):
    """The blob is corrupt, was tampered with, or its key is no longer held."""


@dataclass(frozen=True)
class KeyRing:
    """Every key we can decrypt with; the first one encrypts."""

    keys: dict[str, bytes]
    active_key_id: str

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for raw in spec.split(","):
            entry = raw.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep or not key_id or len(key_id) > 32:
                raise ImproperlyConfigured(
                    "DOCFLOW_PAYLOAD_KEYS entries must look like 'keyid:base64key'"
                )
            try:
                key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except ValueError as exc:
                raise ImproperlyConfigured(
                    f"payload key {key_id} is not base64"
                ) from exc
            if len(key) != 32:
                raise ImproperlyConfigured(f"payload key {key_id} must be 32 bytes")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise ImproperlyConfigured("DOCFLOW_PAYLOAD_KEYS holds no key")
        return cls(keys=keys, active_key_id=order[0])

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> tuple[str, bytes]:
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[key_id]).encrypt(nonce, plaintext, associated_data)
        encoded_id = key_id.encode()
        return key_id, MAGIC + bytes([len(encoded_id)]) + encoded_id + nonce + sealed

    def decrypt(self, blob: bytes, *, associated_data: bytes) -> tuple[str, bytes]:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 1:
            raise PayloadDecryptionError("not a docflow payload blob")
        id_length = blob[len(MAGIC)]
        start = len(MAGIC) + 1
        key_id = blob[start : start + id_length].decode(errors="replace")
        nonce_start = start + id_length
        if len(blob) < nonce_start + NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError("payload blob is truncated")
        nonce = blob[nonce_start : nonce_start + NONCE_BYTES]
        sealed = blob[nonce_start + NONCE_BYTES :]
        key = self.keys.get(key_id)
        if key is None:
            raise PayloadDecryptionError(f"payload key {key_id} is not in the key ring")
        try:
            return key_id, AESGCM(key).decrypt(nonce, sealed, associated_data)
        except InvalidTag as exc:
            raise PayloadDecryptionError("payload failed authentication") from exc


# Enough leading bytes to hold any blob's header (magic, id length, key id).
HEADER_BYTES = len(MAGIC) + 1 + 255


def blob_key_id(head: bytes) -> str:
    """The key a blob was sealed under, read from its header without decrypting."""
    if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 1:
        raise PayloadDecryptionError("not a docflow payload blob")
    id_length = head[len(MAGIC)]
    start = len(MAGIC) + 1
    if len(head) < start + id_length:
        raise PayloadDecryptionError("payload blob is truncated")
    return head[start : start + id_length].decode(errors="replace")


@lru_cache(maxsize=4)
def _ring_for(spec: str) -> KeyRing:
    return KeyRing.parse(spec)


def key_ring() -> KeyRing:
    """The configured key ring (re-parsed only when the setting changes)."""
    return _ring_for(settings.DOCFLOW_PAYLOAD_KEYS)
