"""Preparation (DESIGN §4 step 2): fit a submitted document to its destination.

Resolve the destination and its profile, check the type by the bytes, convert HTML
and images to PDF, prove the PDF opens, and shift oversize left: optimise, else
split into parts, else hold. Every payload made here is a new encrypted
PayloadVersion with its SHA-256, and every outcome is one audited transition to
``ready`` or ``held``. Work items and sends are the caller's (``transmissions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.utils import timezone
from pypdf.errors import PyPdfError

from audit.services import audit_record
from docflow.conversion import (
    MAX_PLAUSIBLE_PAGES,
    ConversionFailed,
    PdfInfo,
    html_to_pdf,
    image_to_pdf,
    inspect_pdf,
    optimise_pdf,
    split_pdf,
)
from docflow.encryption import PayloadDecryptionError
from docflow.media import MediaRefused, sniff_media
from docflow.models import (
    DestinationProfile,
    Document,
    DocumentStatus,
    Organisation,
    PayloadStage,
    PayloadVersion,
)
from docflow.payload_store import (
    PayloadIntegrityError,
    StoredBlob,
    payload_blob_delete,
    payload_blob_read,
    payload_blob_write,
)
from docflow.selectors import document_current_payload, documents_current_payloads
from docflow.services import (
    SUBMISSION_METADATA_FIELDS,
    document_transition,
    payload_version_record,
)
from docflow.transitions import DocumentTransitions

PDF_MEDIA_TYPE = "application/pdf"
HTML_MEDIA_TYPE = "text/html"
# GIF is listed for profiles that convert it, though intake refuses GIF today.
IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/tiff", "image/gif"})
DESCRIPTION_MAX_LENGTH = Document._meta.get_field("description").max_length
# A part carries all of its parent's intake metadata except the description.
_PART_COPIED_FIELDS = tuple(
    name for name in SUBMISSION_METADATA_FIELDS if name != "description"
)
# What pypdf may raise beyond ConversionFailed on a PDF it has already opened once.
_PDF_REWRITE_ERRORS = (PyPdfError, ValueError, KeyError, TypeError, OSError)


class HoldReason(models.TextChoices):
    """Why preparation held a document: the code work items are classified by."""

    DEST_UNKNOWN = "DEST_UNKNOWN", "The destination is not in the directory."
    DEST_INACTIVE = "DEST_INACTIVE", "The destination is not active."
    DEST_NO_PROFILE = (
        "DEST_NO_PROFILE",
        "There is no destination profile for the destination's endpoint type.",
    )
    TYPE_NOT_ALLOWED = "TYPE_NOT_ALLOWED", "The destination does not take this type."
    CONVERSION_FAILED = "CONVERSION_FAILED", "The content could not be made a PDF."
    PDF_INVALID = "PDF_INVALID", "The PDF failed its checks."
    TOO_LARGE = "TOO_LARGE", "The document is over the size limit and cannot be split."
    PAYLOAD_UNREADABLE = (
        "PAYLOAD_UNREADABLE",
        "The stored payload is missing or failed its integrity check.",
    )


@dataclass(frozen=True)
class Prepared:
    """What preparation did: the document, and what may now be sent."""

    document: Document  # the document after preparation (ready, held, or unchanged)
    sendable: list[Document]  # ready to send: the document, its parts, or nothing


class _Held(Exception):
    """Stops preparation; the document is held with ``reason``."""

    def __init__(self, reason: HoldReason, *, detail: str = "", message: str = ""):
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail
        self.message = message or reason.label


@dataclass
class _Lookups:
    """Directory entries and profiles read once per call (a batch shares them);
    never across calls: profiles are edited live."""

    organisations: dict[str, Organisation | None] = field(default_factory=dict)
    profiles: dict[str, DestinationProfile | None] = field(default_factory=dict)
    # Current payload versions read ahead for a batch's documents.
    payloads: dict[int, PayloadVersion] = field(default_factory=dict)

    def payload(self, document: Document) -> PayloadVersion | None:
        if document.pk in self.payloads:
            return self.payloads.pop(document.pk)
        return document_current_payload(document=document)

    def organisation(self, ods_code: str) -> Organisation | None:
        if ods_code not in self.organisations:
            self.organisations[ods_code] = Organisation.objects.filter(
                ods_code=ods_code
            ).first()
        return self.organisations[ods_code]

    def profile(self, endpoint_type: str) -> DestinationProfile | None:
        if endpoint_type not in self.profiles:
            self.profiles[endpoint_type] = DestinationProfile.objects.filter(
                endpoint_type=endpoint_type
            ).first()
        return self.profiles[endpoint_type]


@dataclass
class _Run:
    """One preparation: what it found, what it stored, and blobs to drop on failure.
    Its transitions go into ``batch``, written by the caller."""

    document: Document
    actor: Any
    batch: DocumentTransitions = field(default_factory=DocumentTransitions)
    lookups: _Lookups = field(default_factory=_Lookups)
    organisation: Organisation | None = None
    profile: DestinationProfile | None = None
    payload: PayloadVersion | None = None
    created: list[PayloadVersion] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    # The submitted version's page count, learnt here, written with the batch.
    page_count: tuple[int, int] | None = None

    def write(self, content: bytes) -> StoredBlob:
        blob = payload_blob_write(content)
        self.written.append(blob.storage_name)
        return blob

    def record(
        self, *, document: Document, stage: str, blob: StoredBlob, page_count: int
    ) -> PayloadVersion:
        version = payload_version_record(
            document=document,
            stage=stage,
            media_type=PDF_MEDIA_TYPE,
            extension="pdf",
            blob=blob,
            page_count=page_count,
        )
        self.created.append(version)
        if document.pk == self.document.pk:
            self.payload = version
        return version

    def store(self, *, stage: str, content: bytes, page_count: int) -> PayloadVersion:
        return self.record(
            document=self.document,
            stage=stage,
            blob=self.write(content),
            page_count=page_count,
        )

    def versions_of(self, document: Document) -> list[dict[str, str]]:
        return [
            {
                "stage": v.stage,
                "payload_version": str(v.public_id),
                "sha256": v.sha256,
            }
            for v in self.created
            if v.document_id == document.pk
        ]


@transaction.atomic
def document_prepare(*, document_id: int, actor: Any = None) -> Prepared:
    """Make a submitted document fit its destination profile, or hold it; once only.

    A document that is no longer ``submitted`` is returned unchanged with nothing
    to send, so a task delivered twice does no harm.
    """
    document = Document.objects.select_for_update().get(pk=document_id)
    if document.status != DocumentStatus.SUBMITTED:
        return Prepared(document=document, sendable=[])
    run = _Run(document=document, actor=actor)
    prepared = _prepare_run(run)
    _flush(run.batch, [run])
    return prepared


@dataclass(frozen=True)
class PreparedBatch:
    """What a batch preparation did: one Prepared per document it took, and the
    documents it left submitted because preparing them failed unexpectedly."""

    prepared: list[Prepared]
    failed: dict[int, Exception]


@transaction.atomic
def documents_prepare(
    *,
    first_id: int | None = None,
    limit: int,
    actor: Any = None,
) -> PreparedBatch:
    """Prepare up to ``limit`` submitted documents in one transaction: ``first_id``
    (if it is still submitted) and the oldest others. Rows another batch holds are
    skipped (it has them), so batches never wait for each other; the transitions
    and their events are written together at the end. A document whose preparation
    fails unexpectedly is rolled back alone and left submitted (the next batch, or
    its own task, tries it again).
    """
    submitted = Document.objects.select_for_update(skip_locked=True, of=("self",))
    documents = []
    if first_id is not None:
        documents = list(submitted.filter(pk=first_id, status=DocumentStatus.SUBMITTED))
    documents += (
        submitted.filter(status=DocumentStatus.SUBMITTED)
        .exclude(pk=first_id)
        .order_by("pk")[: limit - len(documents)]
    )
    batch = DocumentTransitions()
    lookups = _Lookups(
        payloads=documents_current_payloads(document_ids=[d.pk for d in documents])
    )
    prepared: list[Prepared] = []
    failed: dict[int, Exception] = {}
    runs: list[_Run] = []
    for document in documents:
        run = _Run(document=document, actor=actor, batch=batch, lookups=lookups)
        savepoint = transaction.savepoint()
        try:
            prepared.append(_prepare_run(run))
        except Exception as exc:
            transaction.savepoint_rollback(savepoint)
            batch.forget(document)
            failed[document.pk] = exc
        else:
            transaction.savepoint_commit(savepoint)
            runs.append(run)
    _flush(batch, runs)
    return PreparedBatch(prepared=prepared, failed=failed)


def _flush(batch: DocumentTransitions, runs: list[_Run]) -> None:
    try:
        counts: dict[int, list[int]] = {}
        for run in runs:
            if run.page_count:
                counts.setdefault(run.page_count[1], []).append(run.page_count[0])
        for page_count, version_ids in counts.items():
            PayloadVersion.objects.filter(pk__in=version_ids).update(
                page_count=page_count
            )
        batch.flush()
    except BaseException:
        # Everything rolls back: the blobs must not outlive the rows that named them.
        for run in runs:
            for storage_name in run.written:
                payload_blob_delete(storage_name)
        raise


def _prepare_run(run: _Run) -> Prepared:
    try:
        try:
            return _prepare(run)
        except _Held as held:
            return Prepared(document=_hold(run, held), sendable=[])
    except BaseException:
        # The rows that named these blobs roll back; the blobs must not outlive them.
        for storage_name in run.written:
            payload_blob_delete(storage_name)
        raise


def part_description(description: str, *, number: int, count: int) -> str:
    """The parent's description with " (part i of n)", the base cut to fit."""
    suffix = f" (part {number} of {count})"
    return description[: DESCRIPTION_MAX_LENGTH - len(suffix)] + suffix


def _prepare(run: _Run) -> Prepared:
    profile = _resolve_destination(run)
    version = run.lookups.payload(run.document)
    if version is None:
        raise _Held(HoldReason.PAYLOAD_UNREADABLE, detail="missing")
    run.payload = version
    content = _read(version)
    media_type = _sniffed_media_type(content, version)
    allowed = profile.allowed_media_types
    if media_type != PDF_MEDIA_TYPE and media_type in allowed:
        # Sent as it is: a type pypdf cannot check, so only its size is checked.
        if version.size_bytes > profile.max_file_size_bytes:
            raise _Held(HoldReason.TOO_LARGE, detail="not_a_pdf")
        return _ready(run, version, reason="ready as submitted")
    if media_type == PDF_MEDIA_TYPE and media_type in allowed:
        pdf, reason = content, "ready as submitted"
        info = _recorded_or_inspected(pdf, version)
        if version.page_count != info.page_count:
            version.page_count = info.page_count
            run.page_count = (version.pk, info.page_count)
    else:
        pdf, reason = _converted(content, media_type, profile), "converted to PDF"
        info = _inspected(pdf)
        version = run.store(
            stage=PayloadStage.CONVERTED, content=pdf, page_count=info.page_count
        )
    if info.size_bytes <= profile.max_file_size_bytes:
        return _ready(run, version, reason=reason)
    return _shift_left(run, version, pdf)


def _resolve_destination(run: _Run) -> DestinationProfile:
    document = run.document
    organisation = run.lookups.organisation(document.destination_ods_code)
    if organisation is None:
        raise _Held(HoldReason.DEST_UNKNOWN)
    run.organisation = organisation
    # Recorded even when it cannot be sent to: the person fixing it sees which one.
    if document.destination_id != organisation.pk:
        run.batch.set_destination(document, organisation)
    if not organisation.is_active:
        raise _Held(
            HoldReason.DEST_INACTIVE,
            detail=organisation.status,
            message=f"The destination is {organisation.get_status_display().lower()}.",
        )
    profile = None
    if organisation.endpoint_type:
        profile = run.lookups.profile(organisation.endpoint_type)
    if profile is None:
        raise _Held(
            HoldReason.DEST_NO_PROFILE, detail=organisation.endpoint_type or "none"
        )
    run.profile = profile
    return profile


def _read(version: PayloadVersion) -> bytes:
    try:
        return payload_blob_read(
            storage_name=version.storage_name, expected_sha256=version.sha256
        )
    except PayloadIntegrityError:
        raise _Held(HoldReason.PAYLOAD_UNREADABLE, detail="checksum_mismatch") from None
    except PayloadDecryptionError:
        raise _Held(HoldReason.PAYLOAD_UNREADABLE, detail="decryption_failed") from None


def _sniffed_media_type(content: bytes, version: PayloadVersion) -> str:
    try:
        sniffed = sniff_media(content)
    except MediaRefused as refused:
        raise _Held(
            HoldReason.TYPE_NOT_ALLOWED, detail=refused.code, message=refused.message
        ) from None
    if sniffed.media_type != version.media_type:
        raise _Held(
            HoldReason.TYPE_NOT_ALLOWED,
            detail="type_mismatch",
            message="The stored bytes are not of the type recorded for them.",
        )
    return sniffed.media_type


def _converted(content: bytes, media_type: str, profile: DestinationProfile) -> bytes:
    convert = None
    if PDF_MEDIA_TYPE in profile.allowed_media_types:
        if media_type == HTML_MEDIA_TYPE and profile.convert_html_to_pdf:
            convert = html_to_pdf
        elif media_type in IMAGE_MEDIA_TYPES and profile.convert_images_to_pdf:
            convert = image_to_pdf
    if convert is None:
        raise _Held(
            HoldReason.TYPE_NOT_ALLOWED,
            detail=media_type,
            message=f"{profile.name} does not take {media_type} or convert it to PDF.",
        )
    try:
        return convert(content)
    except ConversionFailed as failed:
        raise _Held(
            HoldReason.CONVERSION_FAILED, detail=failed.code, message=failed.message
        ) from None


def _recorded_or_inspected(pdf: bytes, version: PayloadVersion) -> PdfInfo:
    """A version's page count is only ever recorded from opening its bytes with
    pypdf (intake's inspection, or this module's), and ``_read`` has just proved
    these are those bytes (SHA-256): they are not opened a second time. A version
    with no count, or an implausible one, is inspected."""
    if version.page_count and 1 <= version.page_count <= MAX_PLAUSIBLE_PAGES:
        return PdfInfo(page_count=version.page_count, size_bytes=len(pdf))
    return _inspected(pdf)


def _inspected(pdf: bytes) -> PdfInfo:
    """Opens, not encrypted, 1 to MAX_PLAUSIBLE_PAGES pages (conversion's limit)."""
    try:
        return inspect_pdf(pdf)
    except ConversionFailed as failed:
        raise _Held(
            HoldReason.PDF_INVALID, detail=failed.code, message=failed.message
        ) from None
    except PyPdfError:
        raise _Held(HoldReason.PDF_INVALID, detail="unreadable") from None


def _shift_left(run: _Run, version: PayloadVersion, pdf: bytes) -> Prepared:
    limit = run.profile.max_file_size_bytes
    try:
        smaller = optimise_pdf(pdf)
    except _PDF_REWRITE_ERRORS:
        smaller = pdf  # a PDF pypdf cannot rewrite whole may still split by pages
    if len(smaller) < len(pdf):
        info = _inspected(smaller)
        version = run.store(
            stage=PayloadStage.OPTIMISED, content=smaller, page_count=info.page_count
        )
        if info.size_bytes <= limit:
            return _ready(run, version, reason="optimised to fit the size limit")
        pdf = smaller  # split what optimisation made smaller: fewer, smaller parts
    parts = _checked_parts(pdf, limit=limit)
    if len(parts) == 1:
        # Rewriting the pages alone dropped enough (unused objects): no parts needed.
        [(content, info)] = parts
        version = run.store(
            stage=PayloadStage.OPTIMISED, content=content, page_count=info.page_count
        )
        return _ready(run, version, reason="optimised to fit the size limit")
    return _split(run, version, parts)


def _checked_parts(pdf: bytes, *, limit: int) -> list[tuple[bytes, PdfInfo]]:
    """Every part checked before any is stored, so a hold leaves no orphan parts."""
    try:
        parts = split_pdf(pdf, max_bytes=limit)
    except ConversionFailed as failed:
        raise _Held(
            HoldReason.TOO_LARGE, detail=failed.code, message=failed.message
        ) from None
    except _PDF_REWRITE_ERRORS:
        raise _Held(HoldReason.TOO_LARGE, detail="split_failed") from None
    checked = []
    for part in parts:
        info = _inspected(part)
        if info.size_bytes > limit:
            raise _Held(HoldReason.TOO_LARGE, detail="part_too_large")
        checked.append((part, info))
    return checked


def _split(
    run: _Run, version: PayloadVersion, parts: list[tuple[bytes, PdfInfo]]
) -> Prepared:
    # Written directly, not through the batch: nothing of this document's is queued
    # there yet (it is split instead of made ready), and the parts are new rows.
    parent, count = run.document, len(parts)
    children: list[tuple[Document, PayloadVersion]] = []
    for number, (content, info) in enumerate(parts, start=1):
        blob = run.write(content)
        child = Document(
            **{name: getattr(parent, name) for name in _PART_COPIED_FIELDS},
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
                **_ready_data(run, child, child_version),
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
        data={**_ready_data(run, parent, version), "part_count": count},
    )
    return Prepared(document=parent, sendable=sendable)


def _ready_data(
    run: _Run, document: Document, version: PayloadVersion
) -> dict[str, Any]:
    return {
        "destination": run.organisation.ods_code,
        "endpoint_type": run.organisation.endpoint_type,
        "payload_version": str(version.public_id),
        "stage": version.stage,
        "sha256": version.sha256,
        "media_type": version.media_type,
        "size_bytes": version.size_bytes,
        "page_count": version.page_count,
        "versions_created": run.versions_of(document),
    }


def _ready(run: _Run, version: PayloadVersion, *, reason: str) -> Prepared:
    document = run.batch.apply(
        run.document,
        "mark_prepared",
        actor=run.actor,
        reason=reason,
        data=_ready_data(run, run.document, version),
    )
    return Prepared(document=document, sendable=[document])


def _hold(run: _Run, held: _Held) -> Document:
    data: dict[str, Any] = {
        "message": held.message,
        "destination": run.document.destination_ods_code,
    }
    if held.detail:
        data["detail"] = held.detail
    if run.organisation is not None:
        data["endpoint_type"] = run.organisation.endpoint_type
    if run.payload is not None:
        data["payload_version"] = str(run.payload.public_id)
        data["stage"] = run.payload.stage
        data["sha256"] = run.payload.sha256
    data["versions_created"] = run.versions_of(run.document)
    return run.batch.apply(
        run.document,
        "hold_before_send",
        actor=run.actor,
        reason=held.reason.value,
        data=data,
    )
