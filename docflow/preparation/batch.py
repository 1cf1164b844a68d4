"""Preparing documents in the database: one run per document, many runs per
batch, every transition of a batch written together at the end.

A document whose content must be converted (HTML, images) is not converted here:
its run stops with :class:`NeedsConversion`, it stays submitted, and a
:class:`ConversionJob` row hands it to the isolated conversion step
(``docflow.preparation.converting``), so a batch never waits for a renderer and a
render that never ends cannot roll a batch back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef

from docflow.conversion.isolated import ConversionOutcome
from docflow.models import (
    ConversionJob,
    DestinationProfile,
    Document,
    DocumentStatus,
    PayloadStage,
    PayloadVersion,
)
from docflow.payloads.store import payload_blob_delete, payload_blobs_read_ahead
from docflow.preparation.checks import (
    NeedsConversion,
    converted,
    media_type_sniffed,
    payload_read,
    pdf_inspected,
    recorded_or_inspected,
)
from docflow.preparation.run import (
    PDF_MEDIA_TYPE,
    Held,
    HoldReason,
    Lookups,
    Prepared,
    Run,
    run_hold,
    run_ready,
)
from docflow.preparation.shift_left import shift_left
from docflow.selectors import documents_current_payloads
from docflow.transitions import DocumentTransitions


def waiting_for_preparation():
    """Submitted documents a preparation batch may take: not those handed to the
    isolated conversion step."""
    return Document.objects.filter(status=DocumentStatus.SUBMITTED).exclude(
        Exists(ConversionJob.objects.filter(document=OuterRef("pk")))
    )


def document_prepare_locked(
    *,
    document_id: int,
    actor: Any = None,
    conversion: ConversionOutcome | None = None,
    conversion_source: str = "",
) -> Prepared:
    """Prepare one submitted document under its row lock, in the caller's
    transaction; content that needs converting (with no ``conversion`` outcome of
    the payload whose SHA-256 is ``conversion_source``) gets its conversion job and
    is returned still submitted."""
    document = Document.objects.select_for_update().get(pk=document_id)
    if document.status != DocumentStatus.SUBMITTED:
        return Prepared(document=document, sendable=[])
    run = Run(
        document=document,
        actor=actor,
        conversion=conversion,
        conversion_source=conversion_source,
    )
    try:
        prepared = prepare_run(run)
    except NeedsConversion:
        conversion_jobs_create(batch=run.batch, runs=[run])
        prepared = Prepared(document=document, sendable=[], converting=True)
    flush(run.batch, [run])
    return prepared


@dataclass(frozen=True)
class PreparedBatch:
    """What a batch preparation did: one Prepared per document it took, the
    documents it left submitted because preparing them failed unexpectedly, and
    those it handed to the isolated conversion step."""

    prepared: list[Prepared]
    failed: dict[int, Exception]
    converting: list[int] = field(default_factory=list)


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
    its own task, tries it again). Documents whose content must be converted are
    handed to the conversion step (``converting``) and never converted here.
    """
    submitted = waiting_for_preparation().select_for_update(
        skip_locked=True, of=("self",)
    )
    documents = []
    if first_id is not None:
        documents = list(submitted.filter(pk=first_id))
    documents += submitted.exclude(pk=first_id).order_by("pk")[: limit - len(documents)]
    batch = DocumentTransitions()
    payloads = documents_current_payloads(document_ids=[d.pk for d in documents])
    lookups = Lookups(
        payloads=payloads, stored=payload_blobs_read_ahead(payloads.values())
    )
    prepared: list[Prepared] = []
    failed: dict[int, Exception] = {}
    runs: list[Run] = []
    deferred: list[Run] = []
    for document in documents:
        run = Run(document=document, actor=actor, batch=batch, lookups=lookups)
        savepoint = transaction.savepoint()
        try:
            prepared.append(prepare_run(run))
        except NeedsConversion:
            transaction.savepoint_commit(savepoint)
            deferred.append(run)
        except Exception as exc:
            transaction.savepoint_rollback(savepoint)
            batch.forget(document)
            failed[document.pk] = exc
        else:
            transaction.savepoint_commit(savepoint)
            runs.append(run)
    conversion_jobs_create(batch=batch, runs=deferred)
    flush(batch, runs)
    return PreparedBatch(
        prepared=prepared,
        failed=failed,
        converting=[run.document.pk for run in deferred],
    )


def conversion_jobs_create(*, batch: DocumentTransitions, runs: list[Run]) -> None:
    """Hand these documents to the isolated conversion step: one job each (in one
    statement), and an audit event each, written with the batch."""
    if not runs:
        return
    ConversionJob.objects.bulk_create(
        [ConversionJob(document=run.document) for run in runs],
        ignore_conflicts=True,
    )
    for run in runs:
        batch.audit(
            action="document.conversion_queued",
            target_type="document",
            target_id=str(run.document.public_id),
            data={
                "payload_version": str(run.payload.public_id),
                "media_type": run.payload.media_type,
                "sha256": run.payload.sha256,
                "destination": run.document.destination_ods_code,
            },
            actor=run.actor,
        )


def flush(batch: DocumentTransitions, runs: list[Run]) -> None:
    """Write the batch (page counts learnt, transitions, events); on failure no
    blob a run stored outlives the rows that named it."""
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


def prepare_run(run: Run) -> Prepared:
    """One document's preparation, ending ready or held (or NeedsConversion)."""
    try:
        try:
            return prepare_document_run(run)
        except Held as held:
            return Prepared(document=run_hold(run, held), sendable=[])
    except BaseException:
        # The rows that named these blobs roll back; the blobs must not outlive them.
        for storage_name in run.written:
            payload_blob_delete(storage_name)
        raise


def prepare_document_run(run: Run) -> Prepared:
    """Destination, payload, type, conversion (its outcome), checks, size."""
    profile = destination_resolve(run)
    version = run.lookups.payload(run.document)
    if version is None:
        raise Held(HoldReason.PAYLOAD_UNREADABLE, detail="missing")
    run.payload = version
    if run.conversion is not None and run.conversion_source == version.sha256:
        # Read, proved and sniffed by the conversion step a moment ago.
        content, media_type = b"", version.media_type
    else:
        content = payload_read(version, run.lookups.stored_blob(version))
        media_type = media_type_sniffed(content, version)
    allowed = profile.allowed_media_types
    if media_type != PDF_MEDIA_TYPE and media_type in allowed:
        # Sent as it is: a type pypdf cannot check, so only its size is checked.
        if version.size_bytes > profile.max_file_size_bytes:
            raise Held(HoldReason.TOO_LARGE, detail="not_a_pdf")
        return run_ready(run, version, reason="ready as submitted")
    if media_type == PDF_MEDIA_TYPE and media_type in allowed:
        pdf, reason = content, "ready as submitted"
        info = recorded_or_inspected(pdf, version)
        if version.page_count != info.page_count:
            version.page_count = info.page_count
            run.page_count = (version.pk, info.page_count)
    else:
        pdf, reason = converted(run, media_type, profile), "converted to PDF"
        info = pdf_inspected(pdf)
        refused = run.conversion.refused_summary()
        version = run.store(
            stage=PayloadStage.CONVERTED,
            content=pdf,
            page_count=info.page_count,
            refused_resources=refused,
        )
        if refused and not profile.send_with_lost_content:
            raise Held(
                HoldReason.CONTENT_LOST,
                detail=f"{sum(entry['count'] for entry in refused)} refused",
                message=(
                    "External content the letter refers to was not fetched: "
                    + ", ".join(
                        f"{entry['kind']} ({entry['scheme'] or 'no address'})"
                        for entry in refused
                    )
                    + "."
                ),
                data={"refused_resources": refused},
            )
        if refused:
            reason = "converted to PDF, external content refused"
    if info.size_bytes <= profile.max_file_size_bytes:
        return run_ready(run, version, reason=reason)
    return shift_left(run, version, pdf)


def destination_resolve(run: Run) -> DestinationProfile:
    """The document's destination from the directory, and its profile; a missing
    or inactive destination, or one with no profile, holds the document."""
    document = run.document
    organisation = run.lookups.organisation(document.destination_ods_code)
    if organisation is None:
        raise Held(HoldReason.DEST_UNKNOWN)
    run.organisation = organisation
    # Recorded even when it cannot be sent to: the person fixing it sees which one.
    if document.destination_id != organisation.pk:
        run.batch.set_destination(document, organisation)
    if not organisation.is_active:
        raise Held(
            HoldReason.DEST_INACTIVE,
            detail=organisation.status,
            message=f"The destination is {organisation.get_status_display().lower()}.",
        )
    profile = None
    if organisation.endpoint_type:
        profile = run.lookups.profile(organisation.endpoint_type)
    if profile is None:
        raise Held(
            HoldReason.DEST_NO_PROFILE, detail=organisation.endpoint_type or "none"
        )
    run.profile = profile
    return profile
