"""Small, real sample files built in code (no fixtures on disk)."""

from __future__ import annotations

import io
import zipfile

from docflow.sample_pdf import text_pdf

# 999 000 0000 - 999 999 9999 is valid but never issued: safe test NHS numbers.
VALID_NHS_NUMBER = "9990000018"
OTHER_VALID_NHS_NUMBER = "9990000026"
INVALID_CHECKSUM_NHS_NUMBER = "9990000019"


def pdf_bytes(text: str = "Discharge summary", *, pad_to: int = 0) -> bytes:
    """A minimal valid one-page PDF, optionally padded with a comment."""
    return text_pdf([text], pad_to=pad_to)


def docm_bytes() -> bytes:
    """A macro-enabled Word document (enough structure to be recognised)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Override PartName="/word/document.xml" '
            'ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/>'
            "</Types>",
        )
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("word/vbaProject.bin", b"\x00" * 64)
    return buffer.getvalue()


def exe_bytes() -> bytes:
    """The start of a Windows PE executable."""
    return b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56 + b"PE\x00\x00" + b"\x00" * 200


def png_bytes() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"\x00\xff\xff\xff"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


HTML_LETTER = (
    b"<!DOCTYPE html><html><head><title>Clinic letter</title></head>"
    b"<body><p>Dear Dr Example</p></body></html>"
)


def intake_json_body(**overrides) -> dict:
    """A valid JSON body for POST /api/v1/documents."""
    import base64

    body = {
        "nhs_number": VALID_NHS_NUMBER,
        "patient_family_name": "Testpatient",
        "patient_birth_date": "1950-03-01",
        "document_type": "discharge_summary",
        "description": "Discharge summary",
        "event_date": "2024-01-15",
        "destination_ods_code": "A81001",
        "file_name": "letter.pdf",
        "content": base64.b64encode(pdf_bytes()).decode(),
    }
    body.update(overrides)
    return body
