"""Shifting oversize left (DESIGN §4 step 2): optimise the PDF, else split it into
parts that keep their relationship to the parent, else hold it (TOO_LARGE)."""

from __future__ import annotations

from django.utils import timezone
from pypdf.errors import PyPdfError

from audit.services import audit_record
from docflow.conversion import ConversionFailed, PdfInfo, optimise_pdf, split_pdf
from docflow.models import Document, PayloadStage, PayloadVersion
from docflow.preparation.checks import pdf_inspected
from docflow.preparation.run import (
    Held,
    HoldReason,
    Prepared,
    Run,
    ready_data,
    run_ready,
)
from docflow.services import SUBMISSION_METADATA_FIELDS, document_transition

DESCRIPTION_MAX_LENGTH = Document._meta.get_field("description").max_length
# A part carries all of its parent's intake metadata except the description.
PART_COPIED_FIELDS = tuple(
    name for name in SUBMISSION_METADATA_FIELDS if name != "description"
)
# What pypdf may raise beyond ConversionFailed on a PDF it has already opened once.
PDF_REWRITE_ERRORS = (PyPdfError, ValueError, KeyError, TypeError, OSError)


def part_description(description: str, *, number: int, count: int) -> str:
    """The parent's description with " (part i of n)", the base cut to fit."""
    suffix = f" (part {number} of {count})"
    return description[: DESCRIPTION_MAX_LENGTH - len(suffix)] + suffix


def shift_left(run: Run, version: PayloadVersion, pdf: bytes) -> Prepared:
    """A PDF over the profile's size limit: optimised, else split, else held."""
    limit = run.profile.max_file_size_bytes
    try:
        smaller = optimise_pdf(pdf)
    except PDF_REWRITE_ERRORS:
        smaller = pdf  # a PDF pypdf cannot rewrite whole may still split by pages
    if len(smaller) < len(pdf):
        info = pdf_inspected(smaller)
        version = run.store(
            stage=PayloadStage.OPTIMISED, content=smaller, page_count=info.page_count
        )
        if info.size_bytes <= limit:
            return run_ready(run, version, reason="optimised to fit the size limit")
        pdf = smaller  # split what optimisation made smaller: fewer, smaller parts
    parts = checked_parts(pdf, limit=limit)
    if len(parts) == 1:
        # Rewriting the pages alone dropped enough (unused objects): no parts needed.
        [(content, info)] = parts
        version = run.store(
            stage=PayloadStage.OPTIMISED, content=content, page_count=info.page_count
        )
        return run_ready(run, version, reason="optimised to fit the size limit")
    return split_into_parts(run, version, parts)


def checked_parts(pdf: bytes, *, limit: int) -> list[tuple[bytes, PdfInfo]]:
    """Every part checked before any is stored, so a hold leaves no orphan parts."""
    try:
        parts = split_pdf(pdf, max_bytes=limit)
    except ConversionFailed as failed:
        raise Held(
            HoldReason.TOO_LARGE, detail=failed.code, message=failed.message
        ) from None
    except PDF_REWRITE_ERRORS:
        raise Held(HoldReason.TOO_LARGE, detail="split_failed") from None
    checked = []
    for part in parts:
        info = pdf_inspected(part)
        if info.size_bytes > limit:
            raise Held(HoldReason.TOO_LARGE, detail="part_too_large")
        checked.append((part, info))
    return checked


def split_into_parts(
    run: Run, version: PayloadVersion, parts: list[tuple[bytes, PdfInfo]]
) -> Prepared:
    """The parts become documents of their own, ready; the parent is ready too."""
    # Written directly, not through the batch: nothing of this document's is queued
    # there yet (it is split instead of made ready), and the parts are new rows.
    parent, count = run.document, len(parts)
    children: list[tuple[Document, PayloadVersion]] = []
    for number, (content, info) in enumerate(parts, start=1):
        blob = run.write(content)
        child = Document(
            **{name: getattr(parent, name) for name in PART_COPIED_FIELDS},
            description=part_description(
                parent.description, number=number, count=count
            ),
            sending_organisation_id=parent.sending_organisation_id,
            destination=run.organisation,
            source_system=f"split:{parent.public_id}",
            idempotency_key=f"part-{number}",
            fingerprint=blob.sha256,
            parent=parent,
            part_number=number,
            part_count=count,
            status_changed_at=timezone.now(),
        )
        child._change_reason = f"part {number} of {count} of a split document"
        child.save()
        child_version = run.record(
            document=child,
            stage=PayloadStage.SPLIT_PART,
            blob=blob,
            page_count=info.page_count,
        )
        children.append((child, child_version))
    parent.part_count = count
    parent._change_reason = f"split into {count} parts"
    parent.save(update_fields=["part_count", "updated_at"])
    audit_record(
        action="document.split",
        target_type="document",
        target_id=str(parent.public_id),
        data={
            "payload_version": str(version.public_id),
            "stage": version.stage,
            "sha256": version.sha256,
            "size_bytes": version.size_bytes,
            "max_file_size_bytes": run.profile.max_file_size_bytes,
            "part_count": count,
            "parts": [
                {
                    "document": str(child.public_id),
                    "part_number": child.part_number,
                    "payload_version": str(child_version.public_id),
                    "sha256": child_version.sha256,
                    "size_bytes": child_version.size_bytes,
                    "page_count": child_version.page_count,
                }
                for child, child_version in children
            ],
        },
        actor=run.actor,
    )
    sendable = [
        document_transition(
            document=child,
            transition="mark_prepared",
            actor=run.actor,
            reason=f"part {child.part_number} of {count}",
            data={
                **ready_data(run, child, child_version),
                "parent": str(parent.public_id),
                "part_number": child.part_number,
                "part_count": count,
            },
        )
        for child, child_version in children
    ]
    parent = document_transition(
        document=parent,
        transition="mark_prepared",
        actor=run.actor,
        reason=f"split into {count} parts",
        data={**ready_data(run, parent, version), "part_count": count},
    )
    return Prepared(document=parent, sendable=sendable)
