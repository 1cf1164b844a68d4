"""What a file really is, judged by its bytes, and whether we take it.

Two steps. :func:`sniff_media` is cheap and runs wherever bytes arrive: it names
the type from the bytes and refuses executables, archives, Office files,
polyglots and names that disagree with the content. :func:`inspect_upload` runs
once at intake on what sniffing accepted and looks inside: PDFs that are
truncated, encrypted, carry JavaScript, launch actions or embedded files, or hold
streams that expand without bound; images whose pixel count is a decompression
bomb; HTML past the bounds of ``docflow.uploads.media_html`` (size, elements, depth,
table cells, forced page breaks), the obvious render bombs. Every look is bounded in
objects visited, bytes inflated and seconds spent, so a hostile file costs no more
than a large honest one.
"""

from __future__ import annotations

import io
import re
import struct
import time
import zlib
from dataclasses import dataclass, replace

import magic
from django.conf import settings

from docflow.uploads.media_html import HtmlLimits, html_refusal

# Media types accepted at intake, with the file extensions that may name them.
ACCEPTED_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "application/pdf": ("pdf",),
    "text/html": ("html", "htm"),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/tiff": ("tif", "tiff"),
}
EXTENSION_FOR = {media: exts[0] for media, exts in ACCEPTED_MEDIA_TYPES.items()}
PDF = "application/pdf"

_EXECUTABLE_PREFIXES = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa", b"#!")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_PREFIXES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ZIP_END = b"PK\x05\x06"
_ZIP_CENTRAL = b"PK\x01\x02"
# Readers find a PDF header anywhere in the first kilobyte.
_PDF_HEADER_WINDOW = 1024
# Some producers leave a few stray bytes after %%EOF; more means another file.
_PDF_TRAILING_ALLOWANCE = 64
_MARKUP_IN_HEAD = re.compile(
    rb"<\s*(?:!doctype\s+html|html|head|body|script|svg|iframe|object|embed)\b",
    re.IGNORECASE,
)
# Archive member names are stored uncompressed: found without inflating anything.
_MACRO_MEMBER = re.compile(rb"vbaproject\.bin|vbadata\.xml", re.IGNORECASE)

# PDF names that run code or start programs, in raw bytes (a backstop for objects
# the structural walk cannot reach, e.g. in a damaged cross-reference table).
_RAW_ACTIVE_NAMES = re.compile(
    rb"/S\s*/(JavaScript|Launch)\b|/JS\s*(?:\(|<|\d+\s+\d+\s+R)|/JavaScript\s*<<"
)
_RAW_ESCAPED_NAME = re.compile(rb"/[^\s/<>\[\]()%{}]*#[0-9A-Fa-f]{2}[^\s/<>\[\]()%{}]*")
_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_ACTIVE_NAME_CODES = {
    b"/JavaScript": "pdf_javascript",
    b"/JS": "pdf_javascript",
    b"/Launch": "pdf_launch_action",
}
# Action types (/S) that run code, start programs or open embedded payloads.
_ACTION_CODES = {
    "/JavaScript": "pdf_javascript",
    "/Launch": "pdf_launch_action",
    "/ImportData": "pdf_active_content",
    "/RichMediaExecute": "pdf_active_content",
    "/GoToE": "pdf_embedded_file",
}
_MESSAGES = {
    "pdf_javascript": "The PDF contains JavaScript, which is not accepted.",
    "pdf_launch_action": "The PDF contains an action that launches a program.",
    "pdf_active_content": "The PDF contains active content (executable actions).",
    "pdf_embedded_file": "The PDF carries embedded files, which are not accepted.",
    "pdf_xfa_form": "The PDF contains an XFA form, which may carry scripts.",
}
_FLATE_NAMES = ("/FlateDecode", "/Fl")
_INFLATE_CHUNK = 64 * 1024


class MediaRefused(Exception):
    """The bytes are not something we accept; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SniffedMedia:
    media_type: str
    extension: str
    # Set by vet_upload for a PDF: the pages pypdf found when it opened the bytes.
    page_count: int | None = None


@dataclass(frozen=True)
class InspectionLimits:
    """Bounds on one upload's inspection (settings, read when inspection starts)."""

    max_pages: int
    max_objects: int
    max_seconds: float
    max_stream_expansion_bytes: int
    max_total_expansion_bytes: int
    max_image_pixels: int
    html: HtmlLimits | None = None

    @classmethod
    def from_settings(cls) -> InspectionLimits:
        from docflow.conversion import MAX_PLAUSIBLE_PAGES

        return cls(
            max_pages=getattr(
                settings, "DOCFLOW_UPLOAD_PDF_MAX_PAGES", MAX_PLAUSIBLE_PAGES
            ),
            max_objects=getattr(settings, "DOCFLOW_UPLOAD_PDF_MAX_OBJECTS", 200_000),
            max_seconds=getattr(settings, "DOCFLOW_UPLOAD_INSPECTION_SECONDS", 10.0),
            max_stream_expansion_bytes=getattr(
                settings, "DOCFLOW_UPLOAD_MAX_STREAM_EXPANSION_BYTES", 100 * 2**20
            ),
            max_total_expansion_bytes=getattr(
                settings, "DOCFLOW_UPLOAD_MAX_TOTAL_EXPANSION_BYTES", 512 * 2**20
            ),
            max_image_pixels=getattr(
                settings, "DOCFLOW_UPLOAD_MAX_IMAGE_PIXELS", 100_000_000
            ),
            html=HtmlLimits(
                max_bytes=settings.DOCFLOW_UPLOAD_HTML_MAX_BYTES,
                max_elements=settings.DOCFLOW_UPLOAD_HTML_MAX_ELEMENTS,
                max_depth=settings.DOCFLOW_UPLOAD_HTML_MAX_DEPTH,
                max_table_cells=settings.DOCFLOW_UPLOAD_HTML_MAX_TABLE_CELLS,
                max_page_breaks=settings.DOCFLOW_UPLOAD_HTML_MAX_PAGE_BREAKS,
                max_seconds=getattr(
                    settings, "DOCFLOW_UPLOAD_INSPECTION_SECONDS", 10.0
                ),
            ),
        )


def _is_zip_archive(content: bytes) -> bool:
    """A ZIP end record near the end that points at a central directory.

    Read from the raw bytes, never inflating a member, so a bomb costs nothing.
    """
    tail_start = max(0, len(content) - (22 + 65535))
    position = content.rfind(_ZIP_END, tail_start)
    while position != -1:
        record = content[position : position + 22]
        if len(record) == 22:
            size, offset, comment_length = struct.unpack("<IIH", record[12:22])
            if position + 22 + comment_length <= len(content):
                # Self-extracting and appended archives shift offsets: accept a
                # central directory either where it says or just before the end.
                for start in (offset, position - size):
                    if 0 <= start < position and content.startswith(
                        _ZIP_CENTRAL, start
                    ):
                        return True
        position = content.rfind(_ZIP_END, tail_start, position)
    return False


def sniff_media(content: bytes, *, declared_extension: str = "") -> SniffedMedia:
    """Identify the bytes; refuse executables, archives, office files and mismatches."""
    if not content:
        raise MediaRefused("empty", "The file is empty.")
    head = content[:8]
    if content.startswith(_EXECUTABLE_PREFIXES):
        raise MediaRefused("executable", "The file is an executable or a script.")
    if head.startswith(_OLE2):
        raise MediaRefused(
            "office_document",
            "The file is a legacy Office document, which may carry macros.",
        )
    if content.startswith(_ZIP_PREFIXES):
        if _MACRO_MEMBER.search(content):
            raise MediaRefused(
                "macro_enabled", "The file is a macro-enabled Office document."
            )
        raise MediaRefused(
            "archive", "The file is an archive or a zipped Office document."
        )
    media_type = magic.from_buffer(content[:65536], mime=True)
    if media_type == "application/x-dosexec" or media_type.startswith(
        "application/x-executable"
    ):
        raise MediaRefused("executable", "The file is an executable.")
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise MediaRefused(
            "unsupported_type",
            f"Files of type {media_type} are not accepted; send PDF, HTML, PNG, "
            "JPEG or TIFF.",
        )
    _refuse_polyglot(content, media_type)
    extension = declared_extension.strip().lower().lstrip(".")
    if extension and extension not in ACCEPTED_MEDIA_TYPES[media_type]:
        raise MediaRefused(
            "type_mismatch",
            f"The file's content is {media_type} but its name says .{extension}.",
        )
    return SniffedMedia(media_type=media_type, extension=EXTENSION_FOR[media_type])


def _refuse_polyglot(content: bytes, media_type: str) -> None:
    """One file, one type: refuse bytes that other readers would take as another."""
    head = content[:_PDF_HEADER_WINDOW]
    if media_type == PDF:
        if not content.startswith(b"%PDF-") or _MARKUP_IN_HEAD.search(head):
            raise MediaRefused(
                "polyglot",
                "The file is both a PDF and another type (markup before or around "
                "the PDF header).",
            )
    elif b"%PDF-" in head:
        raise MediaRefused(
            "polyglot", f"The file is both {media_type} and a PDF (PDF header found)."
        )
    if _is_zip_archive(content):
        raise MediaRefused(
            "polyglot",
            f"The file is both {media_type} and a ZIP archive (archive appended).",
        )


def inspect_upload(
    content: bytes, *, media_type: str, limits: InspectionLimits | None = None
) -> int | None:
    """Look inside sniffed bytes once at intake; raise MediaRefused if unsafe.
    Returns a PDF's page count (None for other types)."""
    limits = limits or InspectionLimits.from_settings()
    if media_type == PDF:
        return _inspect_pdf(content, limits)
    if media_type.startswith("image/"):
        _inspect_image(content, limits)
    if media_type == "text/html" and limits.html is not None:
        refusal = html_refusal(content, limits=limits.html)
        if refusal is not None:
            raise MediaRefused(refusal.code, refusal.message)
    return None


def vet_upload(content: bytes, *, declared_extension: str = "") -> SniffedMedia:
    """Everything intake checks on new bytes: their type, then what is inside.

    For every path that stores bytes from outside (API intake, corrected versions).
    """
    sniffed = sniff_media(content, declared_extension=declared_extension)
    page_count = inspect_upload(content, media_type=sniffed.media_type)
    return replace(sniffed, page_count=page_count) if page_count else sniffed


def _inspect_image(content: bytes, limits: InspectionLimits) -> None:
    from PIL import Image, UnidentifiedImageError

    # Image.open reads the header only; the pixels are decoded in preparation.
    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise MediaRefused("image_unreadable", "The image cannot be read.") from None
    except Image.DecompressionBombError:
        width, height = limits.max_image_pixels + 1, 1
    if width * height > limits.max_image_pixels:
        raise MediaRefused(
            "decompression_bomb",
            f"The image is {width}x{height} pixels, over the limit of "
            f"{limits.max_image_pixels}.",
        )


def _inspect_pdf(content: bytes, limits: InspectionLimits) -> int:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    end = content.rfind(b"%%EOF")
    after_end = content[end + 5 :].strip(b"\x00\t\n\x0c\r ") if end != -1 else b""
    if _MARKUP_IN_HEAD.search(after_end):
        raise MediaRefused(
            "polyglot", "The file is both a PDF and markup (appended after its end)."
        )
    if end == -1 or len(after_end) > _PDF_TRAILING_ALLOWANCE:
        raise MediaRefused(
            "pdf_truncated",
            "The PDF is incomplete (no end-of-file marker); send the whole file.",
        )
    _scan_raw_pdf(content)
    deadline = time.monotonic() + limits.max_seconds
    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted:
            raise MediaRefused(
                "pdf_encrypted",
                "The PDF is encrypted or password-protected; send it unprotected.",
            )
        pages = len(reader.pages)
        if not 1 <= pages <= limits.max_pages:
            raise MediaRefused(
                "pdf_page_count",
                f"The PDF has {pages} pages; between 1 and {limits.max_pages} are "
                "accepted.",
            )
        _PdfWalk(limits=limits, deadline=deadline).run(reader.trailer)
        return pages
    except MediaRefused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
        raise MediaRefused(
            "pdf_unreadable", "The PDF is damaged or truncated and cannot be read."
        ) from None


def _scan_raw_pdf(content: bytes) -> None:
    match = _RAW_ACTIVE_NAMES.search(content)
    if match:
        code = "pdf_launch_action" if match.group(1) == b"Launch" else "pdf_javascript"
        raise MediaRefused(code, _MESSAGES[code])
    for escaped in _RAW_ESCAPED_NAME.finditer(content):
        name = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), escaped.group())
        code = _ACTIVE_NAME_CODES.get(name)
        if code:
            raise MediaRefused(code, _MESSAGES[code])


class _PdfWalk:
    """Visit every dictionary and array reachable from the trailer, once each.

    Stream bodies are not decoded except to measure Flate expansion, chunk by
    chunk, stopping at the limit; nothing inflated is kept.
    """

    def __init__(self, *, limits: InspectionLimits, deadline: float) -> None:
        self.limits = limits
        self.deadline = deadline
        self.visited = 0
        self.expanded = 0

    def run(self, trailer) -> None:
        from pypdf.generic import (
            ArrayObject,
            DictionaryObject,
            IndirectObject,
            StreamObject,
        )

        seen: set[tuple[int, int]] = set()
        stack = [value for key, value in trailer.items() if key != "/Encrypt"]
        while stack:
            node = stack.pop()
            if isinstance(node, IndirectObject):
                reference = (node.idnum, node.generation)
                if reference in seen:
                    continue
                seen.add(reference)
                node = node.get_object()
            self._count()
            if isinstance(node, DictionaryObject):
                self._check_dictionary(node)
                if isinstance(node, StreamObject):
                    self._check_stream(node)
                stack.extend(node.values())
            elif isinstance(node, ArrayObject):
                stack.extend(node)

    def _count(self) -> None:
        self.visited += 1
        if self.visited > self.limits.max_objects or (
            self.visited % 256 == 0 and time.monotonic() > self.deadline
        ):
            raise MediaRefused(
                "pdf_too_complex",
                "The PDF is too complex to check within the intake limits.",
            )

    @staticmethod
    def _resolved(value):
        return value.get_object() if hasattr(value, "get_object") else value

    def _check_dictionary(self, node) -> None:
        def refuse(code: str):
            raise MediaRefused(code, _MESSAGES[code])

        if "/JS" in node:
            refuse("pdf_javascript")
        action = self._resolved(node.get("/S"))
        if isinstance(action, str) and action in _ACTION_CODES:
            refuse(_ACTION_CODES[action])
        if "/XFA" in node:
            refuse("pdf_xfa_form")
        if "/EF" in node or "/EmbeddedFiles" in node:
            refuse("pdf_embedded_file")
        if self._resolved(node.get("/Type")) == "/EmbeddedFile":
            refuse("pdf_embedded_file")
        if "/JavaScript" in node:  # the document-level script name tree
            refuse("pdf_javascript")
        uri = self._resolved(node.get("/URI"))
        if isinstance(uri, str | bytes):
            text = uri.decode("latin-1") if isinstance(uri, bytes) else uri
            scheme = text.strip().lower()
            if scheme.startswith("javascript:"):
                refuse("pdf_javascript")
            if scheme.startswith("file:"):
                refuse("pdf_launch_action")

    def _check_stream(self, stream) -> None:
        filters = self._resolved(stream.get("/Filter"))
        if isinstance(filters, list):
            filters = self._resolved(filters[0]) if filters else None
        if filters not in _FLATE_NAMES:
            return
        data = stream._data  # the encoded bytes as read; never pypdf's decoding
        limit = self.limits.max_stream_expansion_bytes
        inflater = zlib.decompressobj()
        produced = 0
        try:
            for start in range(0, len(data), _INFLATE_CHUNK):
                pending = data[start : start + _INFLATE_CHUNK]
                while pending:
                    out = inflater.decompress(pending, _INFLATE_CHUNK * 16)
                    produced += len(out)
                    self._expand(len(out), produced, limit)
                    pending = inflater.unconsumed_tail
                if inflater.eof:
                    break
        except zlib.error:
            return  # a damaged stream is preparation's problem, not a bomb

    def _expand(self, size: int, produced: int, limit: int) -> None:
        self.expanded += size
        if produced > limit or self.expanded > self.limits.max_total_expansion_bytes:
            raise MediaRefused(
                "compression_bomb",
                "The PDF holds compressed data that expands far beyond its size.",
            )
        if time.monotonic() > self.deadline:
            raise MediaRefused(
                "pdf_too_complex",
                "The PDF is too complex to check within the intake limits.",
            )
