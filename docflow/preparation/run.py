"""One preparation's state and its two endings: ``ready`` or ``held``.

:class:`Run` carries what one document's preparation found (destination, profile,
payload, the isolated conversion's outcome) and stored (new versions and their
blobs); its transitions go into a :class:`DocumentTransitions` batch that the
caller writes. :class:`Held` stops a preparation with a :class:`HoldReason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models

from docflow.conversion.isolated import ConversionOutcome
from docflow.models import (
    DestinationProfile,
    Document,
    Organisation,
    PayloadVersion,
)
from docflow.payloads.store import StoredBlob, payload_blob_write
from docflow.selectors import document_current_payload
from docflow.services import payload_version_record
from docflow.transitions import DocumentTransitions

PDF_MEDIA_TYPE = "application/pdf"


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
    CONVERSION_LIMIT = (
        "CONVERSION_LIMIT",
        "The conversion passed a limit of the destination profile.",
    )
    CONTENT_LOST = (
        "CONTENT_LOST",
        "The converted letter lacks external content it refers to.",
    )
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
    # Still submitted, waiting for its isolated conversion (a ConversionJob).
    converting: bool = False


class Held(Exception):
    """Stops preparation; the document is held with ``reason`` (and ``data``
    recorded on the hold's audit event)."""

    def __init__(
        self,
        reason: HoldReason,
        *,
        detail: str = "",
        message: str = "",
        data: dict[str, Any] | None = None,
    ):
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail
        self.message = message or reason.label
        self.data = data or {}


@dataclass
class Lookups:
    """Directory entries and profiles read once per call (a batch shares them);
    never across calls: profiles are edited live."""

    organisations: dict[str, Organisation | None] = field(default_factory=dict)
    profiles: dict[str, DestinationProfile | None] = field(default_factory=dict)
    # Current payload versions read ahead for a batch's documents, and their
    # stored blobs by storage name (``payload_blobs_read_ahead``).
    payloads: dict[int, PayloadVersion] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)

    def stored_blob(self, version: PayloadVersion) -> bytes | None:
        """The version's blob if it was read ahead (once: it is let go here)."""
        return self.stored.pop(version.storage_name, None)

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
class Run:
    """One preparation: what it found, what it stored, and blobs to drop on failure.
    Its transitions go into ``batch``, written by the caller."""

    document: Document
    actor: Any
    batch: DocumentTransitions = field(default_factory=DocumentTransitions)
    lookups: Lookups = field(default_factory=Lookups)
    organisation: Organisation | None = None
    profile: DestinationProfile | None = None
    payload: PayloadVersion | None = None
    created: list[PayloadVersion] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    # The submitted version's page count, learnt here, written with the batch.
    page_count: tuple[int, int] | None = None
    # The isolated conversion of ``conversion_source`` (a payload's SHA-256), done
    # before this run; without it, content that needs converting is deferred.
    conversion: ConversionOutcome | None = None
    conversion_source: str = ""

    def write(self, content: bytes) -> StoredBlob:
        blob = payload_blob_write(content)
        self.written.append(blob.storage_name)
        return blob

    def record(
        self,
        *,
        document: Document,
        stage: str,
        blob: StoredBlob,
        page_count: int,
        refused_resources: list[dict] | None = None,
    ) -> PayloadVersion:
        version = payload_version_record(
            document=document,
            stage=stage,
            media_type=PDF_MEDIA_TYPE,
            extension="pdf",
            blob=blob,
            page_count=page_count,
        )
        if refused_resources:
            version.refused_resources = refused_resources
            version.save(update_fields=["refused_resources"])
        self.created.append(version)
        if document.pk == self.document.pk:
            self.payload = version
        return version

    def store(
        self,
        *,
        stage: str,
        content: bytes,
        page_count: int,
        refused_resources: list[dict] | None = None,
    ) -> PayloadVersion:
        return self.record(
            document=self.document,
            stage=stage,
            blob=self.write(content),
            page_count=page_count,
            refused_resources=refused_resources,
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

    def refused_resources(self) -> list[dict]:
        """What conversion refused for this run's newest version (or nothing)."""
        return list(self.payload.refused_resources or []) if self.payload else []


def ready_data(run: Run, document: Document, version: PayloadVersion) -> dict[str, Any]:
    data = {
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
    refused = run.refused_resources()
    if refused:
        data["refused_resources"] = refused
    return data


def run_ready(run: Run, version: PayloadVersion, *, reason: str) -> Prepared:
    """The document goes to ``ready`` with ``version`` as what will be sent."""
    document = run.batch.apply(
        run.document,
        "mark_prepared",
        actor=run.actor,
        reason=reason,
        data=ready_data(run, run.document, version),
    )
    return Prepared(document=document, sendable=[document])


def run_hold(run: Run, held: Held) -> Document:
    """The document goes to ``held``, the reason and what was made recorded."""
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
    data.update(held.data)
    return run.batch.apply(
        run.document,
        "hold_before_send",
        actor=run.actor,
        reason=held.reason.value,
        data=data,
    )
