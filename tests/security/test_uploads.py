"""Acceptance 2 (uploads): unsafe files are refused at intake and nothing is stored.

Every file is built here from bytes; each goes through the real API client, and
each refusal must name its reason and leave no document, payload version or blob.
"""

from __future__ import annotations

import base64
import io
import time
import zipfile
import zlib

import pytest

from audit.models import AuditEvent
from docflow.models import Document, PayloadVersion
from docflow.sample_pdf import pdf_from_objects
from tests.samples import docm_bytes, intake_json_body, pdf_bytes, png_bytes

pytestmark = pytest.mark.django_db

# Intake answers within this even for hostile files (the real bound is settings').
FAST_SECONDS = 5.0


def build_pdf(
    *,
    catalog: bytes = b"",
    page: bytes = b"",
    extra: tuple[bytes, ...] = (),
    trailer: bytes = b"",
    content: bytes = b"BT /F1 12 Tf 72 720 Td (Clinic letter) Tj ET",
    content_filter: bytes = b"",
) -> bytes:
    """A one-page PDF with a correct cross-reference table.

    Objects 1-5 are catalog, pages, page, content stream and font; ``extra``
    objects are numbered from 6 on, so the caller can refer to them.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> " + page + b" >>",
        b"<< /Length "
        + str(len(content)).encode()
        + content_filter
        + b" >>\nstream\n"
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *extra,
    ]
    return pdf_from_objects(
        objects, header=b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", trailer=trailer
    )


def zeros_deflated(megabytes: int) -> bytes:
    squeezer = zlib.compressobj(9)
    block = bytes(2**20)
    return b"".join(squeezer.compress(block) for _ in range(megabytes)) + (
        squeezer.flush()
    )


def zip_bomb() -> bytes:
    """One member that inflates to 256 MB from a few hundred kilobytes."""
    buffer = io.BytesIO()
    block = bytes(2**20)
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("letter.pdf", "w") as member,
    ):
        for _ in range(256):
            member.write(block)
    return buffer.getvalue()


def docx_like() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes())))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def huge_png() -> bytes:
    """A PNG header claiming 60000 x 60000 pixels over a one-row body."""
    import struct

    real = png_bytes()
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    )
    return real[:8] + chunk + real[8 + 25 :]


def stored_blob_count(payload_dir) -> int:
    if not payload_dir.exists():
        return 0
    return sum(1 for path in payload_dir.rglob("*") if path.is_file())


@pytest.fixture
def submit(api_client, filesystem_payload_store):
    """POST one file through the API; check that a refusal stored nothing."""
    keys = iter(range(10_000))

    def post(content: bytes, file_name: str, *, multipart: bool = False):
        before = (
            Document.objects.count(),
            PayloadVersion.objects.count(),
            stored_blob_count(filesystem_payload_store),
            AuditEvent.objects.filter(action="document.submitted").count(),
        )
        started = time.monotonic()
        key = f"evt-upload-{next(keys)}"
        if multipart:
            upload = io.BytesIO(content)
            upload.name = file_name
            body = intake_json_body()
            del body["content"], body["file_name"]
            response = api_client.post(
                "/api/v1/documents",
                {**body, "file": upload},
                format="multipart",
                HTTP_IDEMPOTENCY_KEY=key,
            )
        else:
            response = api_client.post(
                "/api/v1/documents",
                intake_json_body(
                    content=base64.b64encode(content).decode(), file_name=file_name
                ),
                format="json",
                HTTP_IDEMPOTENCY_KEY=key,
            )
        response.elapsed_seconds = time.monotonic() - started
        after = (
            Document.objects.count(),
            PayloadVersion.objects.count(),
            stored_blob_count(filesystem_payload_store),
            AuditEvent.objects.filter(action="document.submitted").count(),
        )
        response.stored_nothing = before == after
        return response

    return post


def assert_refused(response, code: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/validation")
    found = {(e["field"], e["code"]) for e in body["errors"]}
    assert any(error_code == code for _, error_code in found), found
    assert {field for field, error_code in found if error_code == code} <= {
        "content",
        "file",
    }
    assert response.stored_nothing, "a refused upload left rows or blobs behind"
    assert response.elapsed_seconds < FAST_SECONDS


# The control: what is safe still goes in (so every refusal below means something).


def test_a_plain_pdf_with_an_ordinary_web_link_is_accepted(
    submit, filesystem_payload_store
):
    link = b"<< /Type /Annot /Subtype /Link /Rect [0 0 10 10] /A 6 0 R >>"
    pdf = build_pdf(
        page=b"/Annots [7 0 R]",
        extra=(b"<< /S /URI /URI (https://www.nhs.uk/) >>", link),
    )

    response = submit(pdf, "letter.pdf")

    assert response.status_code == 201, response.content
    assert Document.objects.count() == 1
    assert stored_blob_count(filesystem_payload_store) == 1


def test_a_pdf_with_moderately_compressed_content_is_accepted(submit):
    text = b"BT /F1 12 Tf 72 720 Td (Clinic letter) Tj ET\n" * 2000
    pdf = build_pdf(content=zlib.compress(text), content_filter=b" /Filter /Fl")

    assert submit(pdf, "letter.pdf").status_code == 201


# Archives and bombs.


@pytest.mark.parametrize("file_name", ["results.zip", "results.pdf"])
def test_zip_bomb_is_refused_as_an_archive_without_being_inflated(submit, file_name):
    response = submit(zip_bomb(), file_name)

    assert_refused(response, "archive")
    assert response.elapsed_seconds < 1.0


def test_docx_like_archive_is_refused(submit):
    assert_refused(submit(docx_like(), "letter.docx", multipart=True), "archive")


def test_docm_renamed_pdf_is_refused_as_macro_enabled(submit):
    assert_refused(submit(docm_bytes(), "letter.pdf", multipart=True), "macro_enabled")


def test_pdf_with_a_deflate_bomb_stream_is_refused(submit, settings):
    settings.DOCFLOW_UPLOAD_MAX_STREAM_EXPANSION_BYTES = 16 * 2**20
    pdf = build_pdf(content=zeros_deflated(64), content_filter=b" /Filter /FlateDecode")

    assert_refused(submit(pdf, "letter.pdf"), "compression_bomb")


def test_image_whose_header_claims_billions_of_pixels_is_refused(submit):
    assert_refused(submit(huge_png(), "scan.png"), "decompression_bomb")


# Active content in PDFs.


def test_pdf_opening_with_javascript_is_refused(submit):
    pdf = build_pdf(
        catalog=b"/OpenAction 6 0 R",
        extra=(b"<< /Type /Action /S /JavaScript /JS (app.alert(1)) >>",),
    )

    assert_refused(submit(pdf, "letter.pdf"), "pdf_javascript")


def test_pdf_with_a_document_level_script_is_refused(submit):
    pdf = build_pdf(
        catalog=b"/Names << /JavaScript 6 0 R >>",
        extra=(
            b"<< /Names [(init) 7 0 R] >>",
            b"<< /S /JavaScript /JS 8 0 R >>",
            b"<< /Length 11 >>\nstream\napp.alert()\nendstream",
        ),
    )

    assert_refused(submit(pdf, "letter.pdf", multipart=True), "pdf_javascript")


def test_pdf_with_escaped_javascript_names_is_refused(submit):
    # /J#61vaScript is /JavaScript to every reader.
    pdf = build_pdf(
        catalog=b"/OpenAction << /S /J#61vaScript /J#53 (app.alert(1)) >>",
    )

    assert_refused(submit(pdf, "letter.pdf"), "pdf_javascript")


def test_pdf_whose_link_launches_a_program_is_refused(submit):
    # The action type is an indirect name: only the structural walk can see it.
    pdf = build_pdf(
        page=b"/Annots [7 0 R]",
        extra=(
            b"<< /S 8 0 R /F (cmd.exe) >>",
            b"<< /Type /Annot /Subtype /Link /Rect [0 0 10 10] /A 6 0 R >>",
            b"/Launch",
        ),
    )

    assert_refused(submit(pdf, "letter.pdf"), "pdf_launch_action")


def test_pdf_page_open_action_with_javascript_is_refused(submit):
    pdf = build_pdf(
        page=b"/AA << /O 6 0 R >>",
        extra=(b"<< /S 7 0 R /JS 8 0 R >>", b"/JavaScript", b"(app.alert(1))"),
    )

    assert_refused(submit(pdf, "letter.pdf"), "pdf_javascript")


def test_pdf_carrying_an_embedded_file_is_refused(submit):
    pdf = build_pdf(
        catalog=b"/Names << /EmbeddedFiles 6 0 R >>",
        extra=(
            b"<< /Names [(a.exe) 7 0 R] >>",
            b"<< /Type /Filespec /F (a.exe) /EF << /F 8 0 R >> >>",
            b"<< /Type /EmbeddedFile /Length 2 >>\nstream\nMZ\nendstream",
        ),
    )

    assert_refused(submit(pdf, "letter.pdf"), "pdf_embedded_file")


# Polyglots, damaged and protected PDFs.


def test_pdf_that_is_also_a_zip_archive_is_refused(submit):
    assert_refused(submit(pdf_bytes() + docx_like(), "letter.pdf"), "polyglot")


def test_html_behind_a_pdf_header_is_refused(submit):
    polyglot = (
        b"%PDF-1.4\n<html><body><script>alert(1)</script><p>Letter</p></body></html>"
    )

    assert_refused(submit(polyglot, "letter.pdf"), "polyglot")


def test_html_carrying_a_pdf_header_is_refused(submit):
    polyglot = (
        b"<!DOCTYPE html><html><body><!-- %PDF-1.4 1 0 obj << >> endobj -->"
        b"<p>Letter</p></body></html>"
    )

    assert_refused(submit(polyglot, "letter.html"), "polyglot")


def test_pdf_with_html_appended_after_its_end_is_refused(submit):
    polyglot = build_pdf() + b"<html><script>alert(1)</script></html>\n"

    assert_refused(submit(polyglot, "letter.pdf"), "polyglot")


def test_png_with_an_archive_appended_is_refused(submit):
    assert_refused(submit(png_bytes() + docx_like(), "scan.png"), "polyglot")


def test_truncated_pdf_is_refused(submit):
    whole = build_pdf()

    assert_refused(submit(whole[: len(whole) * 2 // 3], "letter.pdf"), "pdf_truncated")


def test_encrypted_pdf_is_refused(submit):
    assert_refused(submit(encrypted_pdf(), "letter.pdf"), "pdf_encrypted")


def test_pdf_with_no_pages_is_refused(submit):
    pdf = build_pdf().replace(b"/Kids [3 0 R] /Count 1", b"/Kids [] /Count 0   ")

    assert_refused(submit(pdf, "letter.pdf"), "pdf_page_count")


def test_inspection_is_bounded_by_the_object_budget(submit, settings):
    settings.DOCFLOW_UPLOAD_PDF_MAX_OBJECTS = 5

    assert_refused(submit(build_pdf(), "letter.pdf"), "pdf_too_complex")


def test_inspection_is_bounded_by_the_page_limit(submit, settings):
    settings.DOCFLOW_UPLOAD_PDF_MAX_PAGES = 0

    assert_refused(submit(build_pdf(), "letter.pdf"), "pdf_page_count")
