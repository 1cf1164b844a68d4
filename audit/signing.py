"""Signed checkpoints of the audit chain, held outside the database.

A checkpoint says "the event at ``sequence`` has hash ``hash``", signed at ``signed_at``
with an Ed25519 key that lives outside the database: ``DOCFLOW_AUDIT_SIGNING_KEY``
(urlsafe base64 of the 32-byte private seed) or the file named by
``DOCFLOW_AUDIT_SIGNING_KEY_FILE``; never settings or rows. Anyone who rewrites the
chain before a published checkpoint must also forge a signature to hide it.

Verifiers trust the current key's public half plus every public key listed in
``DOCFLOW_AUDIT_TRUSTED_PUBLIC_KEYS`` (comma separated, urlsafe base64): rotation adds
the old public key there, so older checkpoints keep verifying.

Sinks (``AUDIT_CHECKPOINT_SINK``): ``directory`` (default) writes one file per
checkpoint into ``AUDIT_CHECKPOINT_DIR``, created exclusively and made read-only (point
it at append-only or WORM storage in production); ``syslog`` sends the same JSON line to
syslog for a remote collector.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import logging.handlers
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.chain import canonical_timestamp

KEY_ENV = "DOCFLOW_AUDIT_SIGNING_KEY"
TRUSTED_ENV = "DOCFLOW_AUDIT_TRUSTED_PUBLIC_KEYS"


class CheckpointSignatureError(Exception):
    """An external checkpoint whose signature no trusted key makes good."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip().encode("ascii"))


def public_key_text(public: Ed25519PublicKey) -> str:
    """The urlsafe base64 of the raw 32-byte public key."""
    return _b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def key_id(public: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of its SHA-256."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def private_key_text(private: Ed25519PrivateKey) -> str:
    """What ``DOCFLOW_AUDIT_SIGNING_KEY`` holds for ``private``."""
    from cryptography.hazmat.primitives.serialization import (
        NoEncryption,
        PrivateFormat,
    )

    return _b64(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def signing_key() -> Ed25519PrivateKey | None:
    """The checkpoint signing key from the environment or its secret file."""
    text = os.environ.get(KEY_ENV, "").strip()
    if not text and os.environ.get(f"{KEY_ENV}_FILE"):
        try:
            text = Path(os.environ[f"{KEY_ENV}_FILE"]).read_text("utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{KEY_ENV}_FILE cannot be read: {exc}") from exc
    if not text:
        return None
    try:
        return Ed25519PrivateKey.from_private_bytes(_unb64(text))
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{KEY_ENV} must be the urlsafe base64 of a 32-byte Ed25519 seed"
        ) from exc


def trusted_public_keys() -> dict[str, Ed25519PublicKey]:
    """Key id -> public key: the signing key's own and every listed older one."""
    keys: dict[str, Ed25519PublicKey] = {}
    for text in os.environ.get(TRUSTED_ENV, "").split(","):
        if text.strip():
            public = Ed25519PublicKey.from_public_bytes(_unb64(text))
            keys[key_id(public)] = public
    private = signing_key()
    if private is not None:
        keys[key_id(private.public_key())] = private.public_key()
    return keys


@dataclass(frozen=True)
class SignedCheckpoint:
    """One published statement: the event at ``sequence`` has hash ``hash``."""

    sequence: int
    hash: str
    signed_at: str
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return rfc8785.dumps(
            {
                "sequence": self.sequence,
                "hash": self.hash,
                "signed_at": self.signed_at,
                "key_id": self.key_id,
            }
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def checkpoint_sign(
    *, sequence: int, hash: str, at: datetime, key: Ed25519PrivateKey
) -> SignedCheckpoint:
    """Sign (sequence, hash, time) with ``key``."""
    unsigned = SignedCheckpoint(
        sequence=sequence,
        hash=hash,
        signed_at=canonical_timestamp(at),
        key_id=key_id(key.public_key()),
        signature="",
    )
    signature = _b64(key.sign(unsigned.signed_bytes()))
    return SignedCheckpoint(**{**asdict(unsigned), "signature": signature})


def checkpoint_check_signature(
    checkpoint: SignedCheckpoint, keys: dict[str, Ed25519PublicKey]
) -> None:
    """Raise unless a trusted key with the checkpoint's key id signed it."""
    public = keys.get(checkpoint.key_id)
    if public is None:
        raise CheckpointSignatureError(
            f"checkpoint at sequence {checkpoint.sequence} is signed by untrusted "
            f"key {checkpoint.key_id}"
        )
    try:
        public.verify(_unb64(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError) as exc:
        raise CheckpointSignatureError(
            f"checkpoint at sequence {checkpoint.sequence} has a bad signature"
        ) from exc


def checkpoint_publish(checkpoint: SignedCheckpoint) -> None:
    """Write the checkpoint to the configured external sink, never overwriting."""
    sink = getattr(settings, "AUDIT_CHECKPOINT_SINK", "directory")
    if sink == "syslog":
        logger = logging.getLogger("docflow.audit.checkpoints")
        if not logger.handlers:
            address = getattr(settings, "AUDIT_CHECKPOINT_SYSLOG_ADDRESS", "/dev/log")
            logger.addHandler(logging.handlers.SysLogHandler(address=address))
            logger.propagate = False
        logger.warning("docflow-audit-checkpoint %s", checkpoint.to_json())
        return
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{checkpoint.sequence:020d}-{checkpoint.key_id}.json"
    path = directory / name
    # "x": an existing file is never replaced; read-only once written.
    with path.open("x", encoding="utf-8") as handle:
        handle.write(checkpoint.to_json() + "\n")
    path.chmod(0o444)


def checkpoints_load(paths: Iterable[Path]) -> list[SignedCheckpoint]:
    """Every checkpoint in the given files or directories (files ``*.json``; lines
    of syslog captures holding ``docflow-audit-checkpoint {...}`` work too)."""
    found: list[SignedCheckpoint] = []
    for path in paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            for line in file.read_text("utf-8").splitlines():
                start = line.find("{")
                if start < 0:
                    continue
                fields = json.loads(line[start:])
                found.append(SignedCheckpoint(**fields))
    return sorted(found, key=lambda checkpoint: checkpoint.sequence)


def checkpoints_default_paths() -> list[Path]:
    """The directory sink, when there is one to read."""
    if getattr(settings, "AUDIT_CHECKPOINT_SINK", "directory") != "directory":
        return []
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    return [directory] if directory.is_dir() else []


def checkpoints_trusted(paths: Iterable[Path] | None = None) -> list[SignedCheckpoint]:
    """The external checkpoints at ``paths`` (default: the directory sink), each
    signature checked against the trusted keys; one bad signature raises."""
    loaded = checkpoints_load(checkpoints_default_paths() if paths is None else paths)
    keys = trusted_public_keys()
    for checkpoint in loaded:
        checkpoint_check_signature(checkpoint, keys)
    return loaded
