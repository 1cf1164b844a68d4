"""Preparation: destination, type, conversion, checks, optimising and splitting."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image
from pypdf import PdfReader, PdfWriter

from audit.models import AuditEvent
from docflow import preparation
from docflow.conversion import html_to_pdf
from docflow.models import (
    DestinationProfile,
    Document,
    DocumentStatus,
    EndpointType,
    OrganisationStatus,
    PayloadStage,
    PayloadVersion,
)
from docflow.payloads.store import payload_blob_read, payload_blob_write
from docflow.preparation import HoldReason, checks, document_prepare
from docflow.sample_pdf import pdf_from_objects
from docflow.transitions import DocumentTransitions
from tests.factories import OrganisationFactory, submit_document
from tests.samples import HTML_LETTER, VALID_NHS_NUMBER, pdf_bytes, png_bytes

pytestmark = pytest.mark.django_db

S = DocumentStatus
DESTINATION = "A81001"
PATIENT_FAMILY_NAME = "Zzyzxpatient"
PATIENT_GIVEN_NAMES = "Quillon"
PATIENT_BIRTH_DATE = datetime.date(1947, 6, 23)
# Lock in the cheap common path: lock the document, read the directory, profile and
# payload, save destination (+ history) and page count, then the transition: lock,
# update, history, audit chain head, event, head. Savepoints are not counted.
COMMON_PATH_MAX_STATEMENTS = 13


@pytest.fixture(autouse=True)
def _room_to_convert(db):
    """Not a test of conversion limits: a machine busy with other work must not
    push an honest letter past the seeded profiles' 20 s."""
    DestinationProfile.objects.update(
        conversion_wall_seconds=90, conversion_cpu_seconds=60
    )


@pytest.fixture
def destination():
    return OrganisationFactory(ods_code=DESTINATION)


def small_destination(ods_code: str = DESTINATION, **profile):
    """A destination whose own profile has the given limits and rules."""
    values = {
        "name": "Test profile",
        "max_file_size_bytes": 20 * 1024 * 1024,
        "allowed_media_types": ["application/pdf"],
        "conversion_wall_seconds": 90,
        "conversion_cpu_seconds": 60,
        **profile,
    }
    DestinationProfile.objects.update_or_create(
        endpoint_type="test_profile", defaults=values
    )
    return OrganisationFactory(ods_code=ods_code, endpoint_type="test_profile")


def submit(content: bytes = b"", extension: str = "pdf", **overrides) -> Document:
    return submit_document(
        content=content or pdf_bytes(),
        declared_extension=extension,
        patient_family_name=PATIENT_FAMILY_NAME,
        patient_given_names=PATIENT_GIVEN_NAMES,
        patient_birth_date=PATIENT_BIRTH_DATE,
        **overrides,
    )


def submit_stored_as(content: bytes) -> Document:
    """A document whose stored bytes are ``content``, which intake itself would
    refuse (an encrypted PDF): what preparation must still hold safely if such bytes
    ever reach it, for example from before intake refused them."""
    document = submit()
    blob = payload_blob_write(content)
    PayloadVersion.objects.filter(document=document).update(
        storage_name=blob.storage_name,
        key_id=blob.key_id,
        sha256=blob.sha256,
        size_bytes=blob.size_bytes,
        # These bytes were never opened at intake, so no page count is known.
        page_count=None,
    )
    return document


def prepare(document: Document) -> preparation.Prepared:
    return document_prepare(document_id=document.pk)


def versions(document: Document) -> list[PayloadVersion]:
    return list(document.payload_versions.order_by("created_at", "id"))


def plaintext(version: PayloadVersion) -> bytes:
    return payload_blob_read(
        storage_name=version.storage_name, expected_sha256=version.sha256
    )


def events(document: Document, action: str | None = None) -> list[AuditEvent]:
    queryset = AuditEvent.objects.filter(
        target_type="document", target_id=str(document.public_id)
    )
    if action:
        queryset = queryset.filter(action=action)
    return list(queryset.order_by("sequence"))


def stored_files(payload_dir) -> list:
    return sorted(p for p in payload_dir.rglob("*") if p.is_file())


def multi_page_pdf(pages: int) -> bytes:
    """Pages of incompressible text, so every page adds real bytes."""
    html = "".join(
        f'<section style="page-break-after: always"><h1>Page {n}</h1>'
        f"<p>{os.urandom(1200).hex(' ', 4)}</p></section>"
        for n in range(1, pages + 1)
    )
    return html_to_pdf(f"<html><body>{html}</body></html>".encode())


def raw_image_pdf(width: int = 600, height: int = 800) -> bytes:
    """One page showing a gradient stored uncompressed: big, and easily shrunk."""
    pixels = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    raw = pixels.tobytes()
    content = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /XObject << /Im1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%b\nendstream" % (len(content), content),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d "
        b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Length %d >>\n"
        b"stream\n%b\nendstream" % (width, height, len(raw), raw),
    ]
    return pdf_from_objects(bodies)


def undecodable_png() -> bytes:
    """A PNG by its signature and header whose image data is not zlib."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"not zlib at all")
        + chunk(b"IEND", b"")
    )


def encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf_bytes()))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def first_lines(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    return [page.extract_text().strip().splitlines()[0] for page in reader.pages]


def assert_held(result: preparation.Prepared, reason: HoldReason) -> AuditEvent:
    document = result.document
    document.refresh_from_db()
    assert document.status == S.HELD
    assert document.status_reason == reason.value
    assert result.sendable == []
    [event] = events(document, "document.hold_before_send")
    assert event.data["reason"] == reason.value
    assert event.data["message"]
    return event


# The common path: an allowed PDF under the limit.


def test_allowed_pdf_becomes_ready_with_its_page_count_and_no_new_version(
    destination,
):
    document = submit()
    [original] = versions(document)

    result = prepare(document)

    document.refresh_from_db()
    assert document.status == S.READY
    assert document.destination == destination
    assert result.document.pk == document.pk
    assert [d.pk for d in result.sendable] == [document.pk]
    [version] = versions(document)
    assert version.pk == original.pk
    assert version.stage == PayloadStage.ORIGINAL
    assert version.page_count == 1
    [event] = events(document, "document.mark_prepared")
    assert event.data["destination"] == DESTINATION
    assert event.data["endpoint_type"] == EndpointType.DOCMAN10
    assert event.data["payload_version"] == str(original.public_id)
    assert event.data["stage"] == PayloadStage.ORIGINAL
    assert event.data["sha256"] == original.sha256
    assert event.data["page_count"] == 1
    assert event.data["versions_created"] == []


def test_allowed_pdf_costs_one_read_no_second_opening_and_few_queries(
    destination, monkeypatch, filesystem_payload_store
):
    document = submit()
    files_before = stored_files(filesystem_payload_store)
    calls = {"read": 0, "inspect": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    real_read = checks.payload_blob_read
    monkeypatch.setattr(checks, "payload_blob_read", counting("read", real_read))
    monkeypatch.setattr(checks, "inspect_pdf", counting("inspect", checks.inspect_pdf))

    with CaptureQueriesContext(connection) as queries:
        result = prepare(document)

    assert result.document.status == S.READY
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    assert len(statements) <= COMMON_PATH_MAX_STATEMENTS, statements
    # Intake opened these bytes and recorded their pages; the read proves they are
    # the same bytes (SHA-256), so they are not opened again.
    assert calls == {"read": 1, "inspect": 0}
    assert stored_files(filesystem_payload_store) == files_before


def test_intake_records_a_pdfs_page_count_on_its_original():
    document = submit(multi_page_pdf(3))

    [original] = versions(document)
    assert original.stage == PayloadStage.ORIGINAL
    assert original.page_count == 3


def test_a_pdf_with_no_recorded_page_count_is_opened_and_its_count_recorded(
    destination, monkeypatch
):
    document = submit(multi_page_pdf(3))
    PayloadVersion.objects.filter(document=document).update(page_count=None)
    opened = []
    real = checks.inspect_pdf

    def counting(pdf):
        opened.append(len(pdf))
        return real(pdf)

    monkeypatch.setattr(checks, "inspect_pdf", counting)

    result = prepare(document)

    assert result.document.status == S.READY
    assert len(opened) == 1
    [version] = versions(document)
    assert version.page_count == 3
    [event] = events(document, "document.mark_prepared")
    assert event.data["page_count"] == 3


# Conversion.


def test_html_is_converted_to_a_pdf_version_whose_sha256_matches_its_bytes(
    destination,
):
    document = submit(HTML_LETTER, "html")
    [original] = versions(document)

    result = prepare(document)

    assert result.document.status == S.READY
    assert [d.pk for d in result.sendable] == [document.pk]
    [kept, converted] = versions(document)
    assert kept.pk == original.pk
    assert converted.stage == PayloadStage.CONVERTED
    assert converted.media_type == "application/pdf"
    assert converted.file_extension == "pdf"
    content = plaintext(converted)
    assert content.startswith(b"%PDF-")
    assert hashlib.sha256(content).hexdigest() == converted.sha256
    assert converted.size_bytes == len(content)
    assert converted.page_count == len(PdfReader(io.BytesIO(content)).pages) == 1
    [event] = events(document, "document.mark_prepared")
    assert event.data["payload_version"] == str(converted.public_id)
    assert event.data["stage"] == PayloadStage.CONVERTED
    assert event.data["sha256"] == converted.sha256
    assert event.data["versions_created"] == [
        {
            "stage": PayloadStage.CONVERTED,
            "payload_version": str(converted.public_id),
            "sha256": converted.sha256,
        }
    ]


def test_image_is_converted_to_a_one_page_pdf(destination):
    document = submit(png_bytes(), "png")

    result = prepare(document)

    assert result.document.status == S.READY
    converted = versions(document)[-1]
    assert converted.stage == PayloadStage.CONVERTED
    assert converted.media_type == "application/pdf"
    assert converted.page_count == 1
    assert plaintext(converted).startswith(b"%PDF-")


def test_a_type_the_profile_takes_as_it_is_is_sent_unconverted():
    small_destination(allowed_media_types=["application/pdf", "text/html"])
    document = submit(HTML_LETTER, "html")

    result = prepare(document)

    assert result.document.status == S.READY
    [version] = versions(document)
    assert version.stage == PayloadStage.ORIGINAL
    assert version.media_type == "text/html"
    [event] = events(document, "document.mark_prepared")
    assert event.data["sha256"] == version.sha256


@pytest.mark.parametrize(
    ("content", "extension", "profile"),
    [
        (HTML_LETTER, "html", {"convert_html_to_pdf": False}),
        (png_bytes(), "png", {"convert_images_to_pdf": False}),
        (pdf_bytes(), "pdf", {"allowed_media_types": ["text/html"]}),
    ],
    ids=["html-not-converted", "image-not-converted", "pdf-not-allowed"],
)
def test_a_type_the_profile_neither_takes_nor_converts_is_held(
    content, extension, profile
):
    small_destination(**profile)
    document = submit(content, extension)

    result = prepare(document)

    assert_held(result, HoldReason.TYPE_NOT_ALLOWED)
    assert len(versions(document)) == 1


def test_bytes_that_disagree_with_their_recorded_type_are_held(destination):
    document = submit(HTML_LETTER, "html")
    # A row that no longer matches its bytes (say, edited by hand) is not trusted.
    PayloadVersion.objects.filter(document=document).update(
        media_type="application/pdf"
    )

    result = prepare(document)

    event = assert_held(result, HoldReason.TYPE_NOT_ALLOWED)
    assert event.data["detail"] == "type_mismatch"


def test_an_image_that_cannot_be_decoded_is_held_even_after_html_was_converted(
    destination,
):
    # Converting HTML loads WeasyPrint, which makes Pillow lenient process-wide.
    prepare(submit(HTML_LETTER, "html"))
    document = submit(undecodable_png(), "png")

    result = prepare(document)

    event = assert_held(result, HoldReason.CONVERSION_FAILED)
    assert event.data["detail"] == "conversion_failed"
    assert event.data["message"] == "The image could not be read."
    assert len(versions(document)) == 1


def test_a_pdf_that_fails_its_checks_is_held_pdf_invalid(destination):
    document = submit_stored_as(encrypted_pdf())

    result = prepare(document)

    event = assert_held(result, HoldReason.PDF_INVALID)
    assert event.data["detail"] == "encrypted"


def test_a_payload_that_fails_its_checksum_is_held(destination):
    document = submit()
    PayloadVersion.objects.filter(document=document).update(sha256="0" * 64)

    result = prepare(document)

    event = assert_held(result, HoldReason.PAYLOAD_UNREADABLE)
    assert event.data["detail"] == "checksum_mismatch"


# The destination.


@pytest.mark.parametrize(
    ("organisation", "reason", "resolved"),
    [
        (None, HoldReason.DEST_UNKNOWN, False),
        (
            {"status": OrganisationStatus.CLOSED},
            HoldReason.DEST_INACTIVE,
            True,
        ),
        ({"endpoint_type": ""}, HoldReason.DEST_NO_PROFILE, True),
        ({"endpoint_type": "fax_machine"}, HoldReason.DEST_NO_PROFILE, True),
    ],
    ids=["unknown", "closed", "no-endpoint-type", "endpoint-type-without-profile"],
)
def test_a_destination_that_cannot_take_the_document_is_held_with_its_code(
    organisation, reason, resolved
):
    if organisation is not None:
        OrganisationFactory(ods_code=DESTINATION, **organisation)
    document = submit()

    result = prepare(document)

    assert_held(result, reason)
    document.refresh_from_db()
    assert (document.destination is not None) is resolved
    if resolved:
        assert document.destination.ods_code == DESTINATION


# Oversize, shifted left.


def test_an_oversize_pdf_is_optimised_under_the_limit():
    pdf = raw_image_pdf()
    limit = len(pdf) // 4
    small_destination(max_file_size_bytes=limit)
    document = submit(pdf)

    result = prepare(document)

    assert result.document.status == S.READY
    assert [d.pk for d in result.sendable] == [document.pk]
    [original, optimised] = versions(document)
    assert original.page_count == 1
    assert optimised.stage == PayloadStage.OPTIMISED
    content = plaintext(optimised)
    assert len(content) == optimised.size_bytes <= limit
    assert optimised.page_count == 1
    [event] = events(document, "document.mark_prepared")
    assert event.data["stage"] == PayloadStage.OPTIMISED
    assert event.data["sha256"] == optimised.sha256
    assert Document.objects.filter(parent=document).count() == 0


def test_an_oversize_multi_page_pdf_is_split_into_ready_parts():
    pdf = multi_page_pdf(6)
    limit = len(multi_page_pdf(1)) * 2
    assert len(pdf) > limit
    small_destination(max_file_size_bytes=limit)
    parent = submit(pdf, description="Discharge summary", urgent=True)

    result = prepare(parent)

    parent.refresh_from_db()
    assert parent.status == S.READY
    assert parent.status_reason == f"split into {parent.part_count} parts"
    assert parent.part_number is None
    parts = list(parent.parts.order_by("part_number"))
    count = len(parts)
    assert count >= 2
    assert parent.part_count == count
    assert result.document.pk == parent.pk
    assert [d.pk for d in result.sendable] == [p.pk for p in parts]
    pages = []
    for number, part in enumerate(parts, start=1):
        assert part.status == S.READY
        assert part.part_number == number
        assert part.part_count == count
        assert part.description == f"Discharge summary (part {number} of {count})"
        assert part.source_system == f"split:{parent.public_id}"
        assert part.idempotency_key == f"part-{number}"
        assert part.sending_organisation_id == parent.sending_organisation_id
        assert part.destination_id == parent.destination_id
        assert part.nhs_number == parent.nhs_number
        assert part.urgent is True
        [version] = versions(part)
        assert version.stage == PayloadStage.SPLIT_PART
        content = plaintext(version)
        assert len(content) == version.size_bytes <= limit
        assert hashlib.sha256(content).hexdigest() == version.sha256
        assert part.fingerprint == version.sha256
        pages += first_lines(content)
        [ready] = events(part, "document.mark_prepared")
        assert ready.data["parent"] == str(parent.public_id)
        assert ready.data["sha256"] == version.sha256
    assert pages == [f"Page {n}" for n in range(1, 7)]
    [split] = events(parent, "document.split")
    assert split.data["part_count"] == count
    assert [(p["document"], p["sha256"]) for p in split.data["parts"]] == [
        (str(part.public_id), versions(part)[0].sha256) for part in parts
    ]


def test_a_long_description_is_cut_for_its_parts_but_never_the_suffix():
    small_destination(max_file_size_bytes=len(multi_page_pdf(1)) * 2)
    parent = submit(multi_page_pdf(4), description="D" * 255)

    prepare(parent)

    parts = list(parent.parts.order_by("part_number"))
    assert len(parts) >= 2
    for part in parts:
        suffix = f" (part {part.part_number} of {len(parts)})"
        assert len(part.description) == 255
        assert part.description == "D" * (255 - len(suffix)) + suffix


def test_one_page_over_the_limit_is_held_too_large_and_leaves_no_parts():
    small_destination(max_file_size_bytes=500)
    document = submit(multi_page_pdf(2))

    result = prepare(document)

    event = assert_held(result, HoldReason.TOO_LARGE)
    assert event.data["detail"] == "page_too_large"
    assert Document.objects.filter(parent=document).count() == 0
    document.refresh_from_db()
    assert document.part_count is None


def test_converted_html_over_the_limit_is_held_and_keeps_its_converted_version():
    small_destination(max_file_size_bytes=500)
    document = submit(HTML_LETTER, "html")

    result = prepare(document)

    event = assert_held(result, HoldReason.TOO_LARGE)
    converted = versions(document)[1]
    assert converted.stage == PayloadStage.CONVERTED
    assert event.data["payload_version"] == str(converted.public_id)
    assert event.data["sha256"] == converted.sha256
    assert event.data["versions_created"][0]["sha256"] == converted.sha256


# Running again, failing half way, and what the audit trail may hold.


def test_preparing_twice_changes_nothing_the_second_time(destination):
    document = submit(HTML_LETTER, "html")
    prepare(document)
    audit_count = AuditEvent.objects.count()
    version_count = PayloadVersion.objects.count()

    again = prepare(document)

    assert again.document.status == S.READY
    assert again.sendable == []
    assert AuditEvent.objects.count() == audit_count
    assert PayloadVersion.objects.count() == version_count


def test_a_failure_after_storing_rolls_back_and_removes_the_new_blobs(
    destination, monkeypatch, filesystem_payload_store
):
    document = submit(HTML_LETTER, "html")
    files_before = stored_files(filesystem_payload_store)

    real_flush = DocumentTransitions.flush
    flushes = []

    def broken_flush(self):
        flushes.append(self)
        if len(flushes) == 1:
            return real_flush(self)  # the hand-over to the conversion step
        raise RuntimeError("database went away")

    monkeypatch.setattr(DocumentTransitions, "flush", broken_flush)

    with pytest.raises(RuntimeError):
        prepare(document)

    assert len(flushes) == 2  # converted, then the write of its result failed
    document.refresh_from_db()
    assert document.status == S.SUBMITTED
    assert len(versions(document)) == 1
    assert stored_files(filesystem_payload_store) == files_before


def test_audit_events_carry_sha256_and_no_patient_data(destination):
    ready = submit(HTML_LETTER, "html")
    held = submit_stored_as(encrypted_pdf())
    prepare(ready)
    prepare(held)
    small_destination("A81002", max_file_size_bytes=len(multi_page_pdf(1)) * 2)
    split = submit(multi_page_pdf(4), destination_ods_code="A81002")
    prepare(split)

    documents = [ready, held, split, *split.parts.all()]
    prepared = [
        event
        for document in documents
        for event in events(document)
        if event.action != "document.submitted"
    ]

    assert {e.action for e in prepared} == {
        "document.conversion_queued",
        "document.conversion_started",
        "document.mark_prepared",
        "document.hold_before_send",
        "document.split",
    }
    for event in prepared:
        if event.action == "document.conversion_started":
            assert set(event.data) == {"attempt", "slot"}
            continue
        assert len(event.data["sha256"]) == 64
        text = json.dumps(event.data)
        assert VALID_NHS_NUMBER not in text
        assert PATIENT_FAMILY_NAME not in text
        assert PATIENT_GIVEN_NAMES not in text
        assert PATIENT_BIRTH_DATE.isoformat() not in text
