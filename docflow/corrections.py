"""Document corrections a person makes while resolving a problem: a new destination,
or a corrected version.

A corrected version is a new Document whose ``replaces`` points at the old one: it
has its own payload, idempotency key, lifecycle and transmissions, it is prepared
like any submission (conversion, validation, size) and Connect receives it with
``Revision`` set. The old document keeps the bytes and the history of what was
actually sent; the caller closes it (cancelled or rejection resolved) in the same
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task
from pypdf.errors import PyPdfError

from audit.services import audit_record
from docflow.conversion import ConversionFailed, inspect_pdf
from docflow.models import (
    DestinationProfile,
    Document,
    DocumentStatus,
    Organisation,
    PayloadStage,
    SendingOrganisation,
)
from docflow.payloads.encryption import PayloadDecryptionError
from docflow.payloads.store import (
    PayloadIntegrityError,
    payload_blob_delete,
    payload_blob_read,
    payload_blob_write,
)
from docflow.selectors import document_current_payload
from docflow.services import (
    SUBMISSION_METADATA_FIELDS,
    DocumentError,
    DocumentSubmission,
    IntakeRefused,
    Submitted,
    document_submit,
    document_transition,
    payload_version_record,
    submission_fingerprint,
    submission_problems,
)
from docflow.uploads.media import MediaRefused, vet_upload
from docflow.validation import (
    normalise_nhs_number,
    normalise_ods_code,
    validate_ods_code,
)

S = DocumentStatus
PDF_MEDIA_TYPE = "application/pdf"
CORRECTION_SOURCE_SYSTEM = "casework"
# A document may change destination only while nothing is in flight for it.
REROUTABLE_STATES = frozenset({S.HELD, S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED})
# Intake metadata a corrected version carries over unchanged.
_COPIED_FIELDS = SUBMISSION_METADATA_FIELDS
# A source's corrected version withdraws the one it replaces only while that one
# has not started on its way and needs nobody (no work item is open for it).
WITHDRAWN_WHEN_REPLACED = frozenset({S.SUBMITTED, S.READY})
# What a person may correct in a corrected version (the source's reference stays).
CORRECTABLE_FIELDS = tuple(
    name for name in _COPIED_FIELDS if name != "source_reference"
)


class CorrectionRefused(DocumentError):
    """A correction was refused; ``code`` says why in a word, the message in a line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DestinationRefused(CorrectionRefused):
    """The directory does not allow sending to this destination."""


class PayloadDoesNotFit(CorrectionRefused):
    """The document's current content cannot go to this destination as it is."""


@dataclass(frozen=True)
class Destination:
    organisation: Organisation
    profile: DestinationProfile


def destination_for_sending(*, ods_code: str) -> Destination:
    """A destination in the directory, active, with a profile for its endpoint."""
    code = normalise_ods_code(ods_code or "")
    try:
        validate_ods_code(code)
    except ValidationError:
        raise DestinationRefused(
            "invalid", f"{code or 'An empty code'} is not an ODS code."
        ) from None
    organisation = Organisation.objects.filter(ods_code=code).first()
    if organisation is None:
        raise DestinationRefused("unknown", f"{code} is not in the directory.")
    if not organisation.is_active:
        raise DestinationRefused(
            "inactive",
            f"{organisation.name} ({code}) is "
            f"{organisation.get_status_display().lower()} in the directory.",
        )
    profile = None
    if organisation.endpoint_type:
        profile = DestinationProfile.objects.filter(
            endpoint_type=organisation.endpoint_type
        ).first()
    if profile is None:
        raise DestinationRefused(
            "no_profile",
            f"{organisation.name} ({code}) has no known way to receive documents.",
        )
    return Destination(organisation=organisation, profile=profile)


def document_payload_fit_check(*, document: Document, destination: Destination) -> None:
    """The current payload goes as it is: allowed type, within size, PDF opens."""
    # Nothing is converted here: content that needs preparing again needs a
    # corrected version.
    payload = document_current_payload(document=document)
    name = destination.organisation.name
    if payload is None:
        raise PayloadDoesNotFit("missing", "The document has no stored content.")
    profile = destination.profile
    if payload.media_type not in profile.allowed_media_types:
        raise PayloadDoesNotFit(
            "type_not_allowed",
            f"{name} takes {', '.join(profile.allowed_media_types)}, not "
            f"{payload.media_type}; send a corrected version.",
        )
    if payload.size_bytes > profile.max_file_size_bytes:
        raise PayloadDoesNotFit(
            "too_large",
            f"The document is {payload.size_bytes} bytes; {name} takes at most "
            f"{profile.max_file_size_bytes}. Send a smaller corrected version.",
        )
    if payload.media_type == PDF_MEDIA_TYPE and payload.page_count is None:
        # Preparation records a page count once it has opened a PDF; this one was
        # never opened (held before preparation got that far).
        try:
            inspect_pdf(
                payload_blob_read(
                    storage_name=payload.storage_name, expected_sha256=payload.sha256
                )
            )
        except (PayloadIntegrityError, PayloadDecryptionError, OSError):
            raise PayloadDoesNotFit(
                "unreadable", "The stored content cannot be read."
            ) from None
        except (ConversionFailed, PyPdfError):
            raise PayloadDoesNotFit(
                "pdf_invalid", "The PDF does not open; send a corrected version."
            ) from None


@transaction.atomic
def document_reroute(
    *, document: Document, ods_code: str, actor: Any, reason: str = ""
) -> Document:
    """Readdress a document not in flight to a valid destination; audited from/to."""
    locked = Document.objects.select_for_update().get(pk=document.pk)
    if locked.status not in REROUTABLE_STATES:
        raise CorrectionRefused(
            "not_reroutable",
            f"A document that is {locked.get_status_display().lower()} cannot be "
            "rerouted.",
        )
    destination = destination_for_sending(ods_code=ods_code)
    new_code = destination.organisation.ods_code
    previous = locked.destination_ods_code
    if new_code == previous:
        raise DestinationRefused(
            "same_destination", f"The document is already addressed to {new_code}."
        )
    document_payload_fit_check(document=locked, destination=destination)
    locked.destination_ods_code = new_code
    locked.destination = destination.organisation
    locked._change_reason = f"rerouted from {previous} to {new_code}"
    locked.save(update_fields=["destination_ods_code", "destination", "updated_at"])
    audit_record(
        action="document.rerouted",
        target_type="document",
        target_id=str(locked.public_id),
        data={
            "from": previous,
            "to": new_code,
            "endpoint_type": destination.organisation.endpoint_type,
            "reason": reason,
        },
        actor=actor,
    )
    return locked


def document_correction_submit(
    *,
    document: Document,
    actor: Any,
    reason: str = "",
    content: bytes | None = None,
    declared_extension: str = "",
    changes: dict[str, Any] | None = None,
) -> Document:
    """A corrected version is a new document replacing this one, prepared anew."""
    # New bytes are judged and changed details validated as at intake; without new
    # bytes the old content is kept. Preparation is queued once committed.
    changes = dict(changes or {})
    if content is None and not changes:
        raise CorrectionRefused(
            "nothing_changed", "A corrected version needs new content or new details."
        )
    unknown = sorted(set(changes) - set(CORRECTABLE_FIELDS))
    if unknown:
        raise CorrectionRefused(
            "unknown_field", f"These details cannot be corrected: {', '.join(unknown)}."
        )
    if content is not None:
        if not content:
            raise CorrectionRefused("empty", "The corrected file is empty.")
        if len(content) > settings.DOCFLOW_MAX_UPLOAD_BYTES:
            raise CorrectionRefused(
                "too_large",
                f"The corrected file is over {settings.DOCFLOW_MAX_UPLOAD_BYTES} "
                "bytes.",
            )
        try:
            sniffed = vet_upload(content, declared_extension=declared_extension)
        except MediaRefused as refused:
            raise CorrectionRefused(refused.code, refused.message) from None
        media_type, extension = sniffed.media_type, sniffed.extension
        page_count = sniffed.page_count
    else:
        kept = document_current_payload(document=document)
        if kept is None:
            raise CorrectionRefused("missing", "The document has no stored content.")
        try:
            content = payload_blob_read(
                storage_name=kept.storage_name, expected_sha256=kept.sha256
            )
        except (PayloadIntegrityError, PayloadDecryptionError, OSError):
            raise CorrectionRefused(
                "unreadable", "The stored content cannot be read; upload it again."
            ) from None
        media_type, extension = kept.media_type, kept.file_extension
        page_count = kept.page_count
    written: list[str] = []
    try:
        return _correction_create(
            document=document,
            changes=changes,
            content=content,
            media_type=media_type,
            extension=extension,
            page_count=page_count,
            written=written,
            actor=actor,
            reason=reason,
        )
    except BaseException:
        for name in written:
            payload_blob_delete(name)
        raise


def _corrected_submission(
    old: Document, changes: dict[str, Any], content: bytes, extension: str
) -> DocumentSubmission:
    metadata = {name: getattr(old, name) for name in _COPIED_FIELDS}
    metadata.update(changes)
    submission = DocumentSubmission(
        **metadata, content=content, declared_extension=extension
    )
    submission.nhs_number = normalise_nhs_number(submission.nhs_number or "")
    submission.destination_ods_code = normalise_ods_code(
        submission.destination_ods_code or ""
    )
    # The same rules as intake: a correction may not bring in what intake refuses.
    errors = submission_problems(submission)
    if errors:
        raise IntakeRefused(errors)
    return submission


@transaction.atomic
def _correction_create(
    *,
    document,
    changes,
    content,
    media_type,
    extension,
    page_count,
    written: list[str],
    actor,
    reason,
) -> Document:
    # The blob in this transaction: a database blob commits with the version row.
    blob = payload_blob_write(content)
    written.append(blob.storage_name)
    old = Document.objects.select_for_update().get(pk=document.pk)
    if old.parent_id is not None or old.part_count is not None:
        raise CorrectionRefused(
            "split", "A document sent in parts cannot be replaced part by part."
        )
    submission = _corrected_submission(old, changes, content, extension)
    number = Document.objects.filter(replaces=old).count() + 1
    new = Document(
        sending_organisation_id=old.sending_organisation_id,
        source_system=CORRECTION_SOURCE_SYSTEM,
        idempotency_key=f"correction:{old.public_id}:{number}",
        fingerprint=submission_fingerprint(submission),
        replaces=old,
        status_changed_at=timezone.now(),
        **submission.metadata(),
    )
    new._change_reason = f"corrected version of {old.public_id}"
    new.save()
    version = payload_version_record(
        document=new,
        stage=PayloadStage.ORIGINAL,
        media_type=media_type,
        extension=extension,
        blob=blob,
        page_count=page_count,
    )
    audit_record(
        action="document.correction_submitted",
        target_type="document",
        target_id=str(new.public_id),
        data={
            "replaces": str(old.public_id),
            "sending_organisation": old.sending_organisation.ods_code,
            "destination_ods_code": new.destination_ods_code,
            "document_type": new.document_type,
            # Names of what changed, never the values (they are patient details).
            "changed_fields": sorted(changes),
            "content_replaced": blob.sha256 != _sha256_of_current(old),
            "payload_version": str(version.public_id),
            "media_type": media_type,
            "size_bytes": blob.size_bytes,
            "sha256": blob.sha256,
            "reason": reason,
        },
        actor=actor,
    )
    task = settings.DOCFLOW_PREPARE_TASK
    if task:
        transaction.on_commit(lambda: async_task(task, new.pk))
    return new


def _sha256_of_current(document: Document) -> str:
    current = document_current_payload(document=document)
    return current.sha256 if current is not None else ""


def document_replacement_submit(
    *,
    replaced: Document,
    sending_organisation: SendingOrganisation,
    source_system: str,
    idempotency_key: str,
    submission: DocumentSubmission,
    actor: Any = None,
) -> Submitted:
    """A source system's corrected version: submitted like any document, linked to
    the one it replaces, which must be its own organisation's and not sent in parts.

    The replaced document is cancelled in the same transaction if it has not started
    on its way (submitted or ready); otherwise it keeps its course and the new one
    goes with ``Revision`` set. A replay returns the corrected version first stored.
    """
    with transaction.atomic():
        old = Document.objects.select_for_update(of=("self",)).get(pk=replaced.pk)
        if old.sending_organisation_id != sending_organisation.pk:
            raise CorrectionRefused(
                "not_found", "The document to replace is not one of yours."
            )
        if old.parent_id is not None or old.part_count is not None:
            raise CorrectionRefused(
                "split", "A document sent in parts cannot be replaced part by part."
            )
        submitted = document_submit(
            sending_organisation=sending_organisation,
            source_system=source_system,
            idempotency_key=idempotency_key,
            submission=submission,
            actor=actor,
            replaces=old,
        )
        document, created = submitted
        # The row is locked: no worker can claim it for sending meanwhile.
        if created and old.status in WITHDRAWN_WHEN_REPLACED:
            document_transition(
                document=old,
                transition="cancel",
                reason="replaced by a corrected version",
                data={"replaced_by": str(document.public_id)},
                actor=actor,
            )
    return submitted
