"""Moving payload blobs from one store to the other (``manage.py payloads_move``).

Each blob is copied, the copy verified (read back, byte for byte, and decrypted
under its name, with the version's checksum when a version names it), then the
switch: for the database that is the commit of the copied rows, after which
readers find them there; then the old copy is removed, only if it is still the
bytes that were copied (key rotation may have rewritten it meanwhile: it is then
copied again by the next run). An interruption anywhere leaves every blob in at
least one store, and readers look in both, so running the command again carries
on where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from docflow.models import PayloadVersion
from docflow.payloads.blobstores import STORE_NAMES, blob_store
from docflow.payloads.encryption import PayloadDecryptionError, key_ring


class PayloadMoveError(Exception):
    """A copy did not verify; the original is kept."""


@dataclass
class MoveReport:
    source: str
    target: str
    moved: int = 0
    failed: int = 0
    # Rewritten in the source (key rotation) while being moved: left for a rerun.
    changed: int = 0
    # Random blob names only: never content or patient details.
    failed_names: list[str] = field(default_factory=list)


def _verified(name: str, blob: bytes, expected_sha256: str | None) -> None:
    """The blob opens under its name (and matches its version's checksum)."""
    _, plaintext = key_ring().decrypt(blob, associated_data=name.encode())
    if (
        expected_sha256 is not None
        and hashlib.sha256(plaintext).hexdigest() != expected_sha256
    ):
        raise PayloadMoveError(f"payload blob {name} does not match its checksum")


def payload_blobs_to_move(*, to: str) -> int:
    """How many blobs the other store holds (what a move to ``to`` has left)."""
    if to not in STORE_NAMES:
        raise ValueError(f"unknown payload store {to!r}: one of {STORE_NAMES}")
    return blob_store(next(key for key in STORE_NAMES if key != to)).count()


def payload_blobs_move(
    *,
    to: str,
    batch_size: int = 100,
    on_progress: Callable[[int], None] | None = None,
) -> MoveReport:
    """Move every blob the other store holds into the store ``to``, a batch at a
    time (copy, verify, switch, remove the old copy). Resumable; a blob that fails
    to verify stays where it was and is reported."""
    if to not in STORE_NAMES:
        raise ValueError(f"unknown payload store {to!r}: one of {STORE_NAMES}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    target = blob_store(to)
    source = blob_store(next(key for key in STORE_NAMES if key != to))
    report = MoveReport(source=source.key, target=target.key)
    after = ""
    while True:
        names = source.names_after(after, batch_size)
        if not names:
            break
        after = names[-1]
        checksums = dict(
            PayloadVersion.objects.filter(storage_name__in=names).values_list(
                "storage_name", "sha256"
            )
        )
        copied: dict[str, bytes] = {}
        # The copies commit together: for the database target this is the switch.
        with transaction.atomic():
            for name in names:
                try:
                    blob = source.read(name)
                    _verified(name, blob, checksums.get(name))
                    # Over any copy an interrupted run left: the source decides.
                    target.put(name, blob)
                    if target.read(name) != blob:
                        raise PayloadMoveError(f"payload blob {name} copied wrong")
                    copied[name] = blob
                except (PayloadDecryptionError, PayloadMoveError, OSError):
                    report.failed += 1
                    report.failed_names.append(name)
        for name, blob in copied.items():
            with transaction.atomic():
                if source.delete_if_unchanged(name, blob):
                    report.moved += 1
                else:
                    # Re-keyed in the source since it was copied: both copies
                    # stay, and the next run copies the new bytes over.
                    report.changed += 1
        if on_progress is not None:
            on_progress(len(names))
    return report
