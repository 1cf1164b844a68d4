"""Turning what a source system sent into a PDF a practice system can file.

Pure functions over bytes: HTML and images become PDF, PDFs are checked, made
smaller, or split into parts under a size limit. Nothing here touches the database
and nothing here imports Django: ``docflow.conversion.child`` renders in a process
of its own with hard limits (``docflow.conversion.isolated`` starts it), and
preparation never renders HTML or decodes an image in its own process.
"""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageSequence, UnidentifiedImageError
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from docflow.conversion.errors import (
    MAX_PLAUSIBLE_PAGES,
    ConversionFailed,
    PageLimitExceeded,
)
from docflow.conversion.html import RefusedResource, html_to_pdf

# A4 at 200 dpi: enough for letters and scanned results, far smaller than 600 dpi.
MAX_IMAGE_PIXELS_LONG_SIDE = 2339
OPTIMISED_JPEG_QUALITY = 70

__all__ = [
    "MAX_PLAUSIBLE_PAGES",
    "ConversionFailed",
    "PageLimitExceeded",
    "PdfInfo",
    "RefusedResource",
    "html_to_pdf",
    "image_to_pdf",
    "inspect_pdf",
    "optimise_pdf",
    "split_pdf",
]


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    size_bytes: int


_STRICT_DECODING = threading.Lock()


@contextmanager
def _strict_image_decoding():
    # Importing WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES, after
    # which a damaged scan would silently become a partly blank page.
    with _STRICT_DECODING:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def image_to_pdf(image: bytes, *, max_pages: int = MAX_PLAUSIBLE_PAGES) -> bytes:
    """One page per frame (multi-page TIFF included), RGB, via Pillow; frames past
    ``max_pages`` are never decoded."""
    try:
        with _strict_image_decoding(), Image.open(io.BytesIO(image)) as opened:
            frames = []
            for frame in ImageSequence.Iterator(opened):
                if len(frames) == max_pages:
                    raise PageLimitExceeded(max_pages)
                frames.append(frame.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ConversionFailed(
            "conversion_failed", "The image could not be read."
        ) from exc
    if not frames:
        raise ConversionFailed("conversion_failed", "The image has no frames.")
    output = io.BytesIO()
    frames[0].save(
        output, format="PDF", save_all=True, append_images=frames[1:], resolution=200
    )
    return output.getvalue()


def inspect_pdf(pdf: bytes) -> PdfInfo:
    """Prove the PDF opens, is not encrypted and has a plausible number of pages."""
    try:
        reader = PdfReader(io.BytesIO(pdf), strict=False)
        if reader.is_encrypted:
            raise ConversionFailed("encrypted", "The PDF is encrypted.")
        pages = len(reader.pages)
    except ConversionFailed:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ConversionFailed("unreadable", "The PDF cannot be opened.") from exc
    if not 1 <= pages <= MAX_PLAUSIBLE_PAGES:
        raise ConversionFailed("implausible_pages", f"The PDF has {pages} pages.")
    return PdfInfo(page_count=pages, size_bytes=len(pdf))


def optimise_pdf(pdf: bytes) -> bytes:
    """Recompress streams, merge identical objects, downscale and re-encode images."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for page in writer.pages:
        for picture in page.images:
            try:
                image = picture.image
            except Exception:  # noqa: S112 (an image pypdf cannot decode stays as is)
                continue
            if image is None:
                continue
            longest = max(image.size)
            if longest > MAX_IMAGE_PIXELS_LONG_SIDE:
                scale = MAX_IMAGE_PIXELS_LONG_SIDE / longest
                image = image.resize(
                    (
                        max(1, int(image.width * scale)),
                        max(1, int(image.height * scale)),
                    )
                )
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            picture.replace(image, quality=OPTIMISED_JPEG_QUALITY)
        page.compress_content_streams()
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    output = io.BytesIO()
    writer.write(output)
    optimised = output.getvalue()
    return optimised if len(optimised) < len(pdf) else pdf


def _pages_as_pdf(reader: PdfReader, start: int, stop: int) -> bytes:
    writer = PdfWriter()
    for index in range(start, stop):
        writer.add_page(reader.pages[index])
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def split_pdf(pdf: bytes, *, max_bytes: int) -> list[bytes]:
    """Consecutive page ranges, each at most ``max_bytes``, in reading order.

    Pages are sized one by one, grouped greedily, and a group that still comes out
    too big (rare: shared fonts usually make groups smaller than their pages) is
    halved. Raises ConversionFailed("page_too_large") when one page alone is over.
    """
    reader = PdfReader(io.BytesIO(pdf))
    sizes = [len(_pages_as_pdf(reader, i, i + 1)) for i in range(len(reader.pages))]
    for index, size in enumerate(sizes):
        if size > max_bytes:
            raise ConversionFailed(
                "page_too_large", f"Page {index + 1} alone is over the size limit."
            )
    groups: list[tuple[int, int]] = []
    start, running = 0, 0
    for index, size in enumerate(sizes):
        if running + size > max_bytes and index > start:
            groups.append((start, index))
            start, running = index, 0
        running += size
    groups.append((start, len(sizes)))

    parts: list[bytes] = []
    pending = list(reversed(groups))
    while pending:
        first, stop = pending.pop()
        part = _pages_as_pdf(reader, first, stop)
        if len(part) <= max_bytes or stop - first == 1:
            parts.append(part)
            continue
        middle = (first + stop) // 2
        pending.extend([(middle, stop), (first, middle)])
    return parts
