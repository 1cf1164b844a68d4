"""Preparation's checks on the bytes: they are the stored ones, of the type
recorded, convertible for the profile (from the isolated conversion's outcome),
and a PDF that opens with a plausible page count. Each failure is a :class:`Held`.
"""

from __future__ import annotations

from django.conf import settings
from pypdf.errors import PyPdfError

from docflow.conversion import (
    MAX_PLAUSIBLE_PAGES,
    ConversionFailed,
    PdfInfo,
    inspect_pdf,
)
from docflow.conversion.isolated import ConversionLimits
from docflow.models import DestinationProfile, PayloadVersion
from docflow.payloads.encryption import PayloadDecryptionError
from docflow.payloads.store import PayloadIntegrityError, payload_blob_read
from docflow.preparation.run import PDF_MEDIA_TYPE, Held, HoldReason, Run
from docflow.uploads.media import MediaRefused, sniff_media

HTML_MEDIA_TYPE = "text/html"
# GIF is listed for profiles that convert it, though intake refuses GIF today.
IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/tiff", "image/gif"})
LIMIT_MESSAGES = {
    "pages": "The converted document would pass the profile's page limit.",
    "wall_time": "The conversion took longer than the profile allows.",
    "cpu_time": "The conversion used more CPU time than the profile allows.",
    "memory": "The conversion needed more memory than the profile allows.",
    "attempts": "The conversion was started too many times without finishing.",
}
# Seconds kept free below the task timeout, so a conversion always ends (and its
# outcome is recorded) before the task that waits for it is killed.
_TASK_TIMEOUT_MARGIN_SECONDS = 20


class NeedsConversion(Exception):
    """The content must be converted first, in a child process outside the batch
    (``docflow.preparation.converting``); the document stays submitted."""


def payload_read(version: PayloadVersion, stored: bytes | None = None) -> bytes:
    """The version's plaintext (from its ``stored`` blob when a batch read it
    ahead), proved by its SHA-256."""
    try:
        return payload_blob_read(
            storage_name=version.storage_name,
            expected_sha256=version.sha256,
            stored=stored,
        )
    except PayloadIntegrityError:
        raise Held(HoldReason.PAYLOAD_UNREADABLE, detail="checksum_mismatch") from None
    except PayloadDecryptionError:
        raise Held(HoldReason.PAYLOAD_UNREADABLE, detail="decryption_failed") from None


def media_type_sniffed(content: bytes, version: PayloadVersion) -> str:
    """The type the bytes say they are, which must be the one recorded."""
    try:
        sniffed = sniff_media(content)
    except MediaRefused as refused:
        raise Held(
            HoldReason.TYPE_NOT_ALLOWED, detail=refused.code, message=refused.message
        ) from None
    if sniffed.media_type != version.media_type:
        raise Held(
            HoldReason.TYPE_NOT_ALLOWED,
            detail="type_mismatch",
            message="The stored bytes are not of the type recorded for them.",
        )
    return sniffed.media_type


def needs_conversion(media_type: str, profile: DestinationProfile) -> bool:
    """Whether the profile converts this type to PDF (else it is not allowed)."""
    if PDF_MEDIA_TYPE not in profile.allowed_media_types:
        return False
    if media_type == HTML_MEDIA_TYPE:
        return profile.convert_html_to_pdf
    return media_type in IMAGE_MEDIA_TYPES and profile.convert_images_to_pdf


def conversion_limits_for(profile: DestinationProfile) -> ConversionLimits:
    """The profile's conversion limits, the wall time kept under the task timeout."""
    ceiling = max(5, settings.Q_CLUSTER["timeout"] - _TASK_TIMEOUT_MARGIN_SECONDS)
    return ConversionLimits(
        wall_seconds=min(profile.conversion_wall_seconds, ceiling),
        cpu_seconds=profile.conversion_cpu_seconds,
        memory_bytes=profile.conversion_memory_mib * 2**20,
        max_pages=max(1, min(profile.conversion_max_pages, MAX_PLAUSIBLE_PAGES)),
        nice=settings.DOCFLOW_CONVERSION_NICE,
    )


def converted(run: Run, media_type: str, profile: DestinationProfile) -> bytes:
    """The PDF the isolated conversion made of this run's payload; without one,
    :class:`NeedsConversion`. A limit passed, or content that cannot be rendered,
    holds the document (once: a hold is never retried by itself)."""
    if not needs_conversion(media_type, profile):
        raise Held(
            HoldReason.TYPE_NOT_ALLOWED,
            detail=media_type,
            message=f"{profile.name} does not take {media_type} or convert it to PDF.",
        )
    outcome = run.conversion
    if outcome is None or run.conversion_source != run.payload.sha256:
        raise NeedsConversion
    if outcome.limit or outcome.crashed:
        limit = outcome.limit or "attempts"
        data = {
            "limit": limit,
            "limits": conversion_limits_for(profile).as_dict(),
            "seconds": round(outcome.seconds, 1),
        }
        if outcome.crashed:
            data["child_ended"] = outcome.crashed
        raise Held(
            HoldReason.CONVERSION_LIMIT,
            detail=limit,
            message=LIMIT_MESSAGES.get(limit, HoldReason.CONVERSION_LIMIT.label),
            data=data,
        )
    if outcome.failure or outcome.pdf is None:
        raise Held(
            HoldReason.CONVERSION_FAILED,
            detail=outcome.failure or "conversion_failed",
            message=outcome.message or "The content could not be rendered as a PDF.",
        )
    return outcome.pdf


def recorded_or_inspected(pdf: bytes, version: PayloadVersion) -> PdfInfo:
    """A version's page count is only ever recorded from opening its bytes with
    pypdf (intake's inspection, or this module's), and ``payload_read`` has just
    proved these are those bytes (SHA-256): they are not opened a second time. A
    version with no count, or an implausible one, is inspected."""
    if version.page_count and 1 <= version.page_count <= MAX_PLAUSIBLE_PAGES:
        return PdfInfo(page_count=version.page_count, size_bytes=len(pdf))
    return pdf_inspected(pdf)


def pdf_inspected(pdf: bytes) -> PdfInfo:
    """Opens, not encrypted, 1 to MAX_PLAUSIBLE_PAGES pages (conversion's limit)."""
    try:
        return inspect_pdf(pdf)
    except ConversionFailed as failed:
        raise Held(
            HoldReason.PDF_INVALID, detail=failed.code, message=failed.message
        ) from None
    except PyPdfError:
        raise Held(HoldReason.PDF_INVALID, detail="unreadable") from None
