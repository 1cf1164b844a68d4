"""What a file really is, judged by its bytes, and whether we take it."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import magic

# Media types accepted at intake, with the file extensions that may name them.
ACCEPTED_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "application/pdf": ("pdf",),
    "text/html": ("html", "htm"),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/tiff": ("tif", "tiff"),
}
EXTENSION_FOR = {media: exts[0] for media, exts in ACCEPTED_MEDIA_TYPES.items()}

_EXECUTABLE_PREFIXES = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa", b"#!")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_PREFIXES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


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


def _looks_macro_enabled(content: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = {n.lower() for n in archive.namelist()}
            if any(n.endswith("vbaproject.bin") for n in names):
                return True
            if "[content_types].xml" in names:
                types = archive.read("[Content_Types].xml").lower()
                return b"macroenabled" in types
    except (zipfile.BadZipFile, KeyError, OSError, RuntimeError):
        return False
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
        if _looks_macro_enabled(content):
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
    extension = declared_extension.strip().lower().lstrip(".")
    if extension and extension not in ACCEPTED_MEDIA_TYPES[media_type]:
        raise MediaRefused(
            "type_mismatch",
            f"The file's content is {media_type} but its name says .{extension}.",
        )
    return SniffedMedia(media_type=media_type, extension=EXTENSION_FOR[media_type])
