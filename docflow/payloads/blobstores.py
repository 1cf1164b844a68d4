"""Where encrypted payload blobs live: rows of ``PayloadBlob`` or files on disk.

``DOCFLOW_PAYLOAD_STORE`` names the store new blobs are written to and read from
first; a blob the store does not hold is looked for in the other one, so
``manage.py payloads_move`` can move blobs while documents keep flowing. Both
stores keep a blob under the random name the payload version records (also its
encryption's associated data), so moving a blob never re-encrypts it.

- The database store inserts a blob in the caller's transaction (the one that
  records the payload version naming it) and refuses to write outside one, so a
  committed version always has its blob and a rolled-back one leaves nothing.
- The file store writes to a temporary file, fsyncs it, renames it into place and
  fsyncs the directory, all before it returns, so the blob is on disk before the
  row naming it commits.

There is no object store (S3 and the like): it is not offered.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from typing import Protocol

from django.conf import settings
from django.core.files.storage import storages
from django.db import connection
from django.db.models import BinaryField
from django.db.models.functions import Substr

from docflow.models import PayloadBlob

DATABASE = "database"
FILESYSTEM = "filesystem"
STORE_NAMES = (DATABASE, FILESYSTEM)


class PayloadBlobMissing(FileNotFoundError):
    """No store holds a blob under this name."""


class PayloadStoreError(RuntimeError):
    """A blob was written where it could outlive the record that names it."""


class BlobStore(Protocol):
    """What every payload blob store does; names are ``xx/<hex>.bin``."""

    key: str

    def write(self, name: str, blob: bytes) -> None: ...
    def put(self, name: str, blob: bytes) -> None: ...
    def read(self, name: str) -> bytes: ...
    def read_many(self, names: list[str]) -> dict[str, bytes]: ...
    def head(self, name: str, size: int) -> bytes: ...
    def replace(self, name: str, blob: bytes) -> None: ...
    def delete(self, name: str) -> None: ...
    def delete_if_unchanged(self, name: str, blob: bytes) -> bool: ...
    def names_after(self, after: str, limit: int) -> list[str]: ...
    def count(self) -> int: ...


def _transaction_doomed() -> bool:
    """Whether the current transaction can only roll back (a failed statement)."""
    if not connection.in_atomic_block:
        return False
    if connection.needs_rollback:
        return True
    if connection.vendor != "postgresql" or connection.connection is None:
        return False
    from psycopg.pq import TransactionStatus

    return connection.connection.info.transaction_status == TransactionStatus.INERROR


class DatabaseBlobStore:
    """Blobs as ``PayloadBlob`` rows, in the caller's transaction."""

    key = DATABASE

    def write(self, name: str, blob: bytes) -> None:
        """Insert a new blob; only inside the transaction that records its owner."""
        if not connection.in_atomic_block:
            raise PayloadStoreError(
                "a payload blob is written to the database only inside the "
                "transaction that records the row naming it"
            )
        PayloadBlob.objects.create(name=name, ciphertext=blob)

    def put(self, name: str, blob: bytes) -> None:
        """Insert a blob, or overwrite a copy an interrupted move left (moving)."""
        PayloadBlob.objects.update_or_create(name=name, defaults={"ciphertext": blob})

    def read(self, name: str) -> bytes:
        value = (
            PayloadBlob.objects.filter(name=name)
            .values_list("ciphertext", flat=True)
            .first()
        )
        if value is None:
            raise PayloadBlobMissing(name)
        return bytes(value)

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Several blobs in one SELECT; names it does not hold are absent."""
        return {
            name: bytes(value)
            for name, value in PayloadBlob.objects.filter(name__in=names)
            .order_by()
            .values_list("name", "ciphertext")
        }

    def head(self, name: str, size: int) -> bytes:
        """The first ``size`` bytes only (EXTERNAL storage reads just those)."""
        value = (
            PayloadBlob.objects.filter(name=name)
            .annotate(head=Substr("ciphertext", 1, size, output_field=BinaryField()))
            .values_list("head", flat=True)
            .first()
        )
        if value is None:
            raise PayloadBlobMissing(name)
        return bytes(value)

    def replace(self, name: str, blob: bytes) -> None:
        """Rewrite a held blob in the caller's transaction (key rotation)."""
        if not PayloadBlob.objects.filter(name=name).update(ciphertext=blob):
            raise PayloadBlobMissing(name)

    def delete(self, name: str) -> None:
        PayloadBlob.objects.filter(name=name).delete()

    def delete_if_unchanged(self, name: str, blob: bytes) -> bool:
        """Delete the row only if it still holds ``blob`` (not re-keyed since)."""
        deleted, _ = PayloadBlob.objects.filter(name=name, ciphertext=blob).delete()
        return bool(deleted)

    def discard(self, names: Iterable[str]) -> None:
        """Drop blobs whose owner never committed. In a transaction that can only
        roll back, the rollback drops them with everything else."""
        names = list(names)
        if names and not _transaction_doomed():
            PayloadBlob.objects.filter(name__in=names).delete()

    def names_after(self, after: str, limit: int) -> list[str]:
        return list(
            PayloadBlob.objects.filter(name__gt=after)
            .order_by("name")
            .values_list("name", flat=True)[:limit]
        )

    def count(self) -> int:
        return PayloadBlob.objects.count()


def _fsync_directory(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FileBlobStore:
    """Blobs as files under the ``payloads`` storage's location, written durably."""

    key = FILESYSTEM
    TEMPORARY_SUFFIX = ".tmp"

    def _storage(self):
        return storages["payloads"]

    def path(self, name: str) -> str:
        """The file for a name (the storage refuses names that leave its root)."""
        return self._storage().path(name)

    def _make_directories(self, directory: str) -> None:
        """Create the blob's directory (and the root) durably, 0700."""
        if os.path.isdir(directory):
            return
        parent = os.path.dirname(directory)
        self._make_directories(parent)
        mode = self._storage().directory_permissions_mode or 0o700
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            return
        os.chmod(directory, mode)
        _fsync_directory(parent)

    def _write_durably(self, name: str, blob: bytes, *, overwrite: bool) -> None:
        """Temporary file, fsync, rename into place, fsync the directory."""
        path = self.path(name)
        directory = os.path.dirname(path)
        self._make_directories(directory)
        temporary = os.path.join(
            directory,
            f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}{self.TEMPORARY_SUFFIX}",
        )
        mode = self._storage().file_permissions_mode or 0o600
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(temporary, path)
            else:
                # A hard link fails if the name is taken: never overwrite a blob.
                os.link(temporary, path)
                os.unlink(temporary)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        _fsync_directory(directory)

    def write(self, name: str, blob: bytes) -> None:
        """Write a new blob; it is on disk (file and directory entry) on return."""
        self._write_durably(name, blob, overwrite=False)

    def put(self, name: str, blob: bytes) -> None:
        """Write a blob, replacing a copy left by an interrupted move."""
        self._write_durably(name, blob, overwrite=True)

    def read(self, name: str) -> bytes:
        try:
            with open(self.path(name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise PayloadBlobMissing(name) from None

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Several blobs, a file each; names it does not hold are absent."""
        found = {}
        for name in names:
            try:
                found[name] = self.read(name)
            except PayloadBlobMissing:
                continue
        return found

    def head(self, name: str, size: int) -> bytes:
        try:
            with open(self.path(name), "rb") as handle:
                return handle.read(size)
        except FileNotFoundError:
            raise PayloadBlobMissing(name) from None

    def replace(self, name: str, blob: bytes) -> None:
        """Swap a held blob atomically: a reader or a crash sees old or new."""
        if not os.path.exists(self.path(name)):
            raise PayloadBlobMissing(name)
        self._write_durably(name, blob, overwrite=True)

    def delete(self, name: str) -> None:
        path = self.path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        _fsync_directory(os.path.dirname(path))

    def delete_if_unchanged(self, name: str, blob: bytes) -> bool:
        try:
            current = self.read(name)
        except PayloadBlobMissing:
            return False
        if current != blob:
            return False
        self.delete(name)
        return True

    def discard(self, names: Iterable[str]) -> None:
        for name in names:
            self.delete(name)

    def _is_blob(self, file_name: str) -> bool:
        return not file_name.startswith(".") and not file_name.endswith(
            self.TEMPORARY_SUFFIX
        )

    def _directories(self) -> list[str]:
        root = self._storage().location
        try:
            entries = sorted(os.scandir(root), key=lambda entry: entry.name)
        except FileNotFoundError:
            return []
        return [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]

    def _names_in(self, directory: str) -> list[str]:
        path = os.path.join(self._storage().location, directory)
        try:
            files = sorted(os.listdir(path))
        except FileNotFoundError:
            return []
        return [f"{directory}/{name}" for name in files if self._is_blob(name)]

    def names_after(self, after: str, limit: int) -> list[str]:
        """The next ``limit`` names after ``after``, listing one directory (a name's
        two-character prefix) at a time, so each batch reads few directories."""
        found: list[str] = []
        start = after.split("/", 1)[0] if after else ""
        for directory in self._directories():
            if directory < start:
                continue
            found.extend(name for name in self._names_in(directory) if name > after)
            if len(found) >= limit:
                break
        return found[:limit]

    def count(self) -> int:
        return sum(len(self._names_in(d)) for d in self._directories())


def blob_store(key: str) -> DatabaseBlobStore | FileBlobStore:
    """The store called ``key`` ("database" or "filesystem")."""
    if key == DATABASE:
        return DatabaseBlobStore()
    if key == FILESYSTEM:
        return FileBlobStore()
    raise ValueError(f"unknown payload store {key!r}: one of {STORE_NAMES}")


def primary_store() -> DatabaseBlobStore | FileBlobStore:
    """The store ``DOCFLOW_PAYLOAD_STORE`` names: new blobs go there."""
    return blob_store(settings.DOCFLOW_PAYLOAD_STORE)


def stores_in_read_order() -> list[DatabaseBlobStore | FileBlobStore]:
    """The configured store first, then the other (a move may be under way)."""
    first = primary_store()
    return [first, blob_store(FILESYSTEM if first.key == DATABASE else DATABASE)]


def blob_locate(name: str) -> tuple[DatabaseBlobStore | FileBlobStore, bytes]:
    """The store holding a blob and its bytes; PayloadBlobMissing if none does."""
    for store in stores_in_read_order():
        try:
            return store, store.read(name)
        except PayloadBlobMissing:
            continue
    raise PayloadBlobMissing(name)


def blobs_locate(names: list[str]) -> dict[str, bytes]:
    """Several blobs' bytes, one read per store (a SELECT for the database store)
    for the names the stores before it lacked; names no store holds are absent."""
    found: dict[str, bytes] = {}
    for store in stores_in_read_order():
        wanted = [name for name in names if name not in found]
        if not wanted:
            break
        found.update(store.read_many(wanted))
    return found


def blob_head(name: str, size: int) -> bytes:
    """A blob's first ``size`` bytes, from whichever store holds it."""
    for store in stores_in_read_order():
        try:
            return store.head(name, size)
        except PayloadBlobMissing:
            continue
    raise PayloadBlobMissing(name)
