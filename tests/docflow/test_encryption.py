"""Payloads at rest: authenticated encryption under named, rotatable keys."""

from __future__ import annotations

import base64
import shutil

import pytest
from django.core.exceptions import ImproperlyConfigured

from docflow.payloads.encryption import KeyRing, PayloadDecryptionError
from docflow.payloads.store import (
    PayloadIntegrityError,
    payload_blob_read,
    payload_blob_write,
)

MARKER = b"MARKER-Zzyzxpatient-9990000018"
PLAINTEXT = b"%PDF-1.4\n" + MARKER + b"\n" + b"clinical letter body " * 20
NAME = b"ab/0123456789abcdef.bin"


def key_spec(key_id: str, seed: int) -> str:
    key = bytes((seed + i) % 256 for i in range(32))
    return f"{key_id}:{base64.urlsafe_b64encode(key).decode()}"


OLD = key_spec("k2023", 1)
NEW = key_spec("k2024", 101)


@pytest.fixture(autouse=True)
def _blobs_as_files(filesystem_payload_store):
    """These tests look at blob files and run without a database."""


@pytest.fixture
def one_key(settings):
    settings.DOCFLOW_PAYLOAD_KEYS = NEW
    return KeyRing.parse(NEW)


def tampered(blob: bytes, position: int) -> bytes:
    return blob[:position] + bytes([blob[position] ^ 0x01]) + blob[position + 1 :]


# The key ring itself.


def test_key_ring_round_trips_bytes_under_its_active_key():
    ring = KeyRing.parse(NEW)

    key_id, blob = ring.encrypt(PLAINTEXT, associated_data=NAME)

    assert key_id == "k2024"
    assert ring.decrypt(blob, associated_data=NAME) == ("k2024", PLAINTEXT)


def test_encrypting_the_same_bytes_twice_gives_different_blobs():
    ring = KeyRing.parse(NEW)

    _, first = ring.encrypt(PLAINTEXT, associated_data=NAME)
    _, second = ring.encrypt(PLAINTEXT, associated_data=NAME)

    assert first != second


def test_blob_does_not_contain_the_plaintext():
    _, blob = KeyRing.parse(NEW).encrypt(PLAINTEXT, associated_data=NAME)

    assert MARKER not in blob
    assert b"%PDF" not in blob


def test_blob_under_other_associated_data_fails():
    ring = KeyRing.parse(NEW)
    _, blob = ring.encrypt(PLAINTEXT, associated_data=NAME)

    with pytest.raises(PayloadDecryptionError):
        ring.decrypt(blob, associated_data=b"cd/another-record.bin")


def test_every_tampered_byte_fails_authentication():
    ring = KeyRing.parse(NEW)
    _, blob = ring.encrypt(b"short letter", associated_data=NAME)

    for position in range(len(blob)):
        with pytest.raises(PayloadDecryptionError):
            ring.decrypt(tampered(blob, position), associated_data=NAME)


@pytest.mark.parametrize("length", [0, 3, 4, 8, 12, 20, 30])
def test_truncated_blob_fails_as_a_decryption_error(length):
    ring = KeyRing.parse(NEW)
    _, blob = ring.encrypt(PLAINTEXT, associated_data=NAME)

    with pytest.raises(PayloadDecryptionError):
        ring.decrypt(blob[:length], associated_data=NAME)


def test_ring_without_the_blobs_key_fails_with_decryption_error():
    _, blob = KeyRing.parse(OLD).encrypt(PLAINTEXT, associated_data=NAME)

    with pytest.raises(PayloadDecryptionError, match="k2023"):
        KeyRing.parse(NEW).decrypt(blob, associated_data=NAME)


def test_two_key_ring_encrypts_with_the_first_and_decrypts_with_both():
    _, old_blob = KeyRing.parse(OLD).encrypt(PLAINTEXT, associated_data=NAME)
    ring = KeyRing.parse(f"{NEW},{OLD}")

    key_id, new_blob = ring.encrypt(PLAINTEXT, associated_data=NAME)

    assert key_id == "k2024"
    assert ring.decrypt(new_blob, associated_data=NAME) == ("k2024", PLAINTEXT)
    assert ring.decrypt(old_blob, associated_data=NAME) == ("k2023", PLAINTEXT)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " , ",
        "no-colon",
        ":" + NEW.partition(":")[2],
        "k1:" + base64.urlsafe_b64encode(b"too short").decode(),
        "k1:not base64!!",
        "k" * 33 + ":" + NEW.partition(":")[2],
    ],
)
def test_malformed_key_spec_is_refused(spec):
    with pytest.raises(ImproperlyConfigured):
        KeyRing.parse(spec)


# Blobs in the payload storage.


def test_blob_on_disk_is_ciphertext_and_reads_back(one_key, filesystem_payload_store):
    stored = payload_blob_write(PLAINTEXT)

    on_disk = (filesystem_payload_store / stored.storage_name).read_bytes()
    assert MARKER not in on_disk
    assert stored.key_id == "k2024"
    assert stored.size_bytes == len(PLAINTEXT)
    assert (
        payload_blob_read(
            storage_name=stored.storage_name, expected_sha256=stored.sha256
        )
        == PLAINTEXT
    )


def test_blob_file_names_carry_no_content(one_key):
    stored = payload_blob_write(PLAINTEXT)

    assert MARKER.decode() not in stored.storage_name
    assert stored.storage_name.endswith(".bin")


def test_blob_copied_under_another_storage_name_fails(
    one_key, filesystem_payload_store
):
    stored = payload_blob_write(PLAINTEXT)
    other = payload_blob_write(b"another document")
    shutil.copyfile(
        filesystem_payload_store / stored.storage_name,
        filesystem_payload_store / other.storage_name,
    )

    with pytest.raises(PayloadDecryptionError):
        payload_blob_read(
            storage_name=other.storage_name, expected_sha256=stored.sha256
        )


def test_tampered_blob_on_disk_fails(one_key, filesystem_payload_store):
    stored = payload_blob_write(PLAINTEXT)
    path = filesystem_payload_store / stored.storage_name
    path.write_bytes(tampered(path.read_bytes(), len(path.read_bytes()) // 2))

    with pytest.raises(PayloadDecryptionError):
        payload_blob_read(
            storage_name=stored.storage_name, expected_sha256=stored.sha256
        )


def test_blob_read_with_a_ring_that_lacks_its_key_fails(settings, one_key):
    stored = payload_blob_write(PLAINTEXT)
    settings.DOCFLOW_PAYLOAD_KEYS = OLD

    with pytest.raises(PayloadDecryptionError):
        payload_blob_read(
            storage_name=stored.storage_name, expected_sha256=stored.sha256
        )


def test_blob_read_with_the_wrong_checksum_fails(one_key):
    stored = payload_blob_write(PLAINTEXT)

    with pytest.raises(PayloadIntegrityError):
        payload_blob_read(storage_name=stored.storage_name, expected_sha256="0" * 64)


def test_after_rotation_new_blobs_use_the_new_key_and_old_blobs_still_read(settings):
    settings.DOCFLOW_PAYLOAD_KEYS = OLD
    old = payload_blob_write(b"written before rotation")

    settings.DOCFLOW_PAYLOAD_KEYS = f"{NEW},{OLD}"
    new = payload_blob_write(b"written after rotation")

    assert (old.key_id, new.key_id) == ("k2023", "k2024")
    assert (
        payload_blob_read(storage_name=old.storage_name, expected_sha256=old.sha256)
        == b"written before rotation"
    )
    assert (
        payload_blob_read(storage_name=new.storage_name, expected_sha256=new.sha256)
        == b"written after rotation"
    )
