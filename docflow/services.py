"""Every write to the document domain. Each service is atomic and audited."""

from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import dataclass, field, fields
from typing import Any

import rfc8785
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditEvent
from audit.services import audit_record
from docflow.backpressure import intake_backpressure_check
from docflow.errors import DocumentError as DocumentError
from docflow.errors import IdempotencyConflict as IdempotencyConflict
from docflow.errors import IntakeBusy as IntakeBusy
from docflow.errors import IntakeRefused as IntakeRefused
from docflow.errors import TransitionConflict as TransitionConflict
from docflow.errors import TransitionRefused as TransitionRefused
from docflow.models import (
    Document,
    DocumentType,
    Gender,
    PayloadStage,
    PayloadVersion,
    PreparationWakeUp,
    SendingOrganisation,
)
from docflow.payloads.store import StoredBlob, payload_blob_delete, payload_blob_write
from docflow.transitions import DocumentTransitions
from docflow.uploads.media import MediaRefused, SniffedMedia, vet_upload
from docflow.validation import (
    CONNECT_LENGTH_LIMITS,
    NON_PATIENT_TEXT_FIELDS,
    PATIENT_TEXT_FIELDS,
    birth_date_warnings,
    idempotency_key_problems,
    normalise_nhs_number,
    normalise_ods_code,
    text_field_rules,
    validate_birth_date,
    validate_event_after_birth,
    validate_length,
    validate_not_future,
    validate_ods_code,
    validate_patient_nhs_number,
)

logger = logging.getLogger(__name__)


class Submitted(tuple):
    """``(document, created)``, and for a new document what intake wrote with it.

    ``payload_version`` and ``audit_event`` let the caller answer with the rows it
    has just written instead of reading them back; both are None for a replay.
    """

    payload_version: PayloadVersion | None
    audit_event: AuditEvent | None

    def __new__(
        cls,
        document: Document,
        created: bool,
        *,
        payload_version: PayloadVersion | None = None,
        audit_event: AuditEvent | None = None,
    ) -> Submitted:
        result = super().__new__(cls, (document, created))
        result.payload_version = payload_version
        result.audit_event = audit_event
        return result


@dataclass(frozen=True)
class VettedContent:
    """What the API already learned of the bytes (``vet_upload``), and for which
    declared extension: intake then need not read them a second time."""

    declared_extension: str
    media: SniffedMedia

    def covers(self, declared_extension: str) -> bool:
        return _normal_extension(self.declared_extension) == _normal_extension(
            declared_extension
        )


def _normal_extension(extension: str) -> str:
    return extension.strip().lower().lstrip(".")


@dataclass
class DocumentSubmission:
    """What a source system sends: metadata plus the bytes."""

    nhs_number: str
    patient_family_name: str
    patient_birth_date: datetime.date
    document_type: str
    description: str
    event_date: datetime.date
    destination_ods_code: str
    content: bytes = field(repr=False)
    declared_extension: str = ""
    patient_given_names: str = ""
    patient_gender: str = ""
    mrn: str = ""
    folder_name: str = ""
    notes: str = ""
    sender_department: str = ""
    sender_person: str = ""
    source_reference: str = ""
    urgent: bool = False
    action_required: bool = False
    medication_changed: bool = False
    inpatient: bool = False
    # Set only by a caller that has vetted exactly these bytes (the API serializer).
    vetted_content: VettedContent | None = field(default=None, compare=False)

    def metadata(self) -> dict[str, Any]:
        # Every metadata value is immutable (text, dates, flags): no deep copy needed.
        return {name: getattr(self, name) for name in SUBMISSION_METADATA_FIELDS}

    def __repr__(self) -> str:  # never show patient details in tracebacks
        return f"DocumentSubmission(document_type={self.document_type!r})"


# Everything a submission says about the document: not its bytes, nor what was
# learned of them.
SUBMISSION_METADATA_FIELDS = tuple(
    f.name
    for f in fields(DocumentSubmission)
    if f.name not in ("content", "declared_extension", "vetted_content")
)


def _validate_submission(
    submission: DocumentSubmission,
) -> dict[str, list[tuple[str, str]]]:
    errors: dict[str, list[tuple[str, str]]] = {}

    def check(name: str, validator, value) -> None:
        try:
            validator(value)
        except ValidationError as exc:
            for message in exc.messages:
                errors.setdefault(name, []).append((exc.code or "invalid", message))

    required = (
        "nhs_number",
        "patient_family_name",
        "patient_birth_date",
        "document_type",
        "description",
        "event_date",
        "destination_ods_code",
    )
    for name in required:
        if getattr(submission, name) in (None, ""):
            errors.setdefault(name, []).append(("required", "This field is required."))
    if submission.nhs_number:
        check("nhs_number", validate_patient_nhs_number, submission.nhs_number)
    if submission.destination_ods_code:
        check(
            "destination_ods_code", validate_ods_code, submission.destination_ods_code
        )
    if submission.patient_birth_date:
        check("patient_birth_date", validate_birth_date, submission.patient_birth_date)
    if submission.event_date:
        check("event_date", validate_not_future, submission.event_date)
    if "patient_birth_date" not in errors:
        check(
            "event_date",
            lambda event_date: validate_event_after_birth(
                event_date=event_date, birth_date=submission.patient_birth_date
            ),
            submission.event_date,
        )
    if submission.document_type and submission.document_type not in DocumentType.values:
        errors.setdefault("document_type", []).append(
            ("invalid_choice", "Not one of the allowed document types.")
        )
    if submission.patient_gender and submission.patient_gender not in Gender.values:
        errors.setdefault("patient_gender", []).append(
            ("invalid_choice", "Not one of the allowed genders.")
        )
    for name in CONNECT_LENGTH_LIMITS:
        check(name, lambda v, n=name: validate_length(n, v), getattr(submission, name))
    # Identifiers only in patient fields; one-line fields hold no control characters.
    for name in (*PATIENT_TEXT_FIELDS, *NON_PATIENT_TEXT_FIELDS):
        value = getattr(submission, name)
        if isinstance(value, str) and value:
            for rule in text_field_rules(name):
                check(name, rule, value)
    return errors


def submission_problems(
    submission: DocumentSubmission,
) -> dict[str, list[tuple[str, str]]]:
    """Intake's metadata rules, without storing anything: ``{field: [(code,
    message)]}``, for a channel that reports every fault of a message at once."""
    return _validate_submission(submission)


def submission_fingerprint(submission: DocumentSubmission) -> str:
    """SHA-256 over canonical metadata and the content's own SHA-256."""
    metadata = {
        k: (v.isoformat() if isinstance(v, datetime.date) else v)
        for k, v in submission.metadata().items()
    }
    digest = hashlib.sha256()
    digest.update(rfc8785.dumps(metadata))
    digest.update(b"\n")
    digest.update(hashlib.sha256(submission.content).digest())
    return digest.hexdigest()


def _existing_for_key(
    *,
    source_system: str,
    idempotency_key: str,
    fingerprint: str,
    replaces: Document | None = None,
):
    existing = (
        Document.objects.filter(
            source_system=source_system, idempotency_key=idempotency_key
        )
        .only("id", "public_id", "fingerprint", "replaces_id")
        .first()
    )
    if existing is None:
        return None
    replaces_id = replaces.pk if replaces is not None else None
    if existing.fingerprint != fingerprint or existing.replaces_id != replaces_id:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used for a different document."
        )
    return Document.objects.get(pk=existing.pk)


def document_submit(
    *,
    sending_organisation: SendingOrganisation,
    source_system: str,
    idempotency_key: str,
    submission: DocumentSubmission,
    actor: Any = None,
    replaces: Document | None = None,
) -> Submitted:
    """Store a new document once per idempotency key; replays return the original.

    Returns ``(document, created)``. Nothing is stored when the submission is refused.
    ``replaces`` links a corrected version to the document it replaces (callers go
    through ``docflow.corrections.document_replacement_submit``, which checks it);
    a replay must name the same replaced document. While the preparation backlog is
    past its depth, IntakeBusy is raised before anything is stored (replays of a
    stored document are still answered); the sender retries the same key later.
    """
    intake_backpressure_check(
        source_system=source_system, idempotency_key=idempotency_key
    )
    submission.nhs_number = normalise_nhs_number(submission.nhs_number)
    submission.destination_ods_code = normalise_ods_code(
        submission.destination_ods_code
    )
    errors = _validate_submission(submission)
    vetted = submission.vetted_content
    try:
        # Type and unsafe content are refused here, before anything is stored.
        if vetted is not None and vetted.covers(submission.declared_extension):
            sniffed = vetted.media
        else:
            sniffed = vet_upload(
                submission.content, declared_extension=submission.declared_extension
            )
    except MediaRefused as refused:
        errors.setdefault("content", []).append((refused.code, refused.message))
        sniffed = None
        logger.warning("intake refused content: %s", refused.code)
    key_problems = idempotency_key_problems(idempotency_key)
    if key_problems:
        errors["idempotency_key"] = key_problems
    if errors:
        raise IntakeRefused(errors)
    assert sniffed is not None

    fingerprint = submission_fingerprint(submission)
    # Insert first and let the unique constraint find replays: new documents are the
    # common case and pay for no extra read; a replay costs a discarded blob.
    written: list[str] = []
    try:
        document, version, event = _document_create(
            sending_organisation=sending_organisation,
            source_system=source_system,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            submission=submission,
            media_type=sniffed.media_type,
            extension=sniffed.extension,
            page_count=sniffed.page_count,
            written=written,
            actor=actor,
            replaces=replaces,
        )
    except IntegrityError:
        # The key is taken, by an earlier or a concurrent request: replay or conflict.
        for name in written:
            payload_blob_delete(name)
        replay = _existing_for_key(
            source_system=source_system,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            replaces=replaces,
        )
        if replay is None:
            raise
        return Submitted(replay, False)
    except BaseException:
        for name in written:
            payload_blob_delete(name)
        raise
    return Submitted(document, True, payload_version=version, audit_event=event)


@transaction.atomic(savepoint=False)
def preparation_wake_up(document_id: int) -> bool:
    """Make sure a preparation task looks for documents after the caller commits:
    queue one (named by ``document_id``) unless one is queued already that has not
    started looking. Returns whether a task was queued.

    The task is queued by dotted name: docflow never imports the app that sends
    (DESIGN §1). The wake-up row stays locked until the caller commits, and a task
    clears it (:func:`preparation_wake_up_clear`) only once that lock is released,
    so a document whose transaction found a task pending is stored before that
    task looks. The ORM broker's queue is a table in this database, so the task row
    commits with the document or not at all; another broker (Redis) is told once
    the document has committed. A lost enqueue, or a task that died before it
    looked, is made good by the dispatch sweep."""
    task = settings.DOCFLOW_PREPARE_TASK
    if not task:
        return False
    wake, _created = PreparationWakeUp.objects.select_for_update().get_or_create(pk=1)
    if wake.pending:
        return False
    PreparationWakeUp.objects.filter(pk=1).update(
        pending=True, changed_at=timezone.now()
    )
    if settings.Q_CLUSTER.get("orm") == transaction.get_connection().alias:
        async_task(task, document_id)
    else:
        transaction.on_commit(lambda: async_task(task, document_id))
    return True


def preparation_wake_up_clear() -> None:
    """A preparation task is about to take the documents waiting: from now on the
    next document stored queues a task of its own. Call outside a transaction, so
    the flag is cleared at once; it waits for the intakes that hold the row, whose
    documents the task will then see."""
    PreparationWakeUp.objects.filter(pk=1, pending=True).update(
        pending=False, changed_at=timezone.now()
    )


def payload_version_record(
    *,
    document: Document,
    stage: str,
    media_type: str,
    extension: str,
    blob: StoredBlob,
    page_count: int | None = None,
) -> PayloadVersion:
    """Record a stored blob as one version of a document; the caller audits it."""
    return PayloadVersion.objects.create(
        document=document,
        stage=stage,
        media_type=media_type,
        file_extension=extension,
        size_bytes=blob.size_bytes,
        sha256=blob.sha256,
        page_count=page_count,
        key_id=blob.key_id,
        storage_name=blob.storage_name,
    )


@transaction.atomic
def _document_create(
    *,
    sending_organisation,
    source_system,
    idempotency_key,
    fingerprint,
    submission: DocumentSubmission,
    media_type,
    extension,
    page_count,
    written: list[str],
    actor,
    replaces: Document | None = None,
) -> tuple[Document, PayloadVersion, AuditEvent]:
    # The blob first, in this transaction: a database blob commits with the version
    # row or not at all; a file is fsynced before the row commits.
    blob = payload_blob_write(submission.content)
    written.append(blob.storage_name)
    metadata = submission.metadata()
    warnings = [w.as_dict() for w in birth_date_warnings(submission.patient_birth_date)]
    document = Document.objects.create(
        sending_organisation=sending_organisation,
        source_system=source_system,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        status_changed_at=timezone.now(),
        replaces=replaces,
        **metadata,
    )
    version = payload_version_record(
        document=document,
        stage=PayloadStage.ORIGINAL,
        media_type=media_type,
        extension=extension,
        blob=blob,
        page_count=page_count,
    )
    # Woken before the event: the event takes the audit chain's lock until commit,
    # so the less that follows it, the less every other writer waits.
    preparation_wake_up(document.pk)
    event = audit_record(
        action="document.submitted",
        target_type="document",
        target_id=str(document.public_id),
        data={
            "sending_organisation": sending_organisation.ods_code,
            "destination_ods_code": document.destination_ods_code,
            "document_type": document.document_type,
            "payload_version": str(version.public_id),
            "media_type": media_type,
            "size_bytes": blob.size_bytes,
            "sha256": blob.sha256,
            **({"replaces": str(replaces.public_id)} if replaces is not None else {}),
            # Accepted, but for a person to check: fields and codes, never values.
            **({"warnings": warnings} if warnings else {}),
        },
        actor=actor,
    )
    return document, version, event


def document_transition(
    *,
    document: Document,
    transition: str,
    actor: Any = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> Document:
    """Move a document along one lifecycle edge under a row lock, and audit it."""
    batch = DocumentTransitions()
    # No savepoint: a refusal is decided before anything is written, and raised
    # outside the block so that the caller's transaction stays usable.
    with transaction.atomic(savepoint=False):
        locked = Document.objects.select_for_update(of=("self",)).get(pk=document.pk)
        refused = batch.refusal(locked, transition)
        if refused is None:
            batch.apply(locked, transition, actor=actor, reason=reason, data=data)
            batch.flush()
    if refused is not None:
        raise TransitionRefused(refused)
    return locked


def document_cancel(*, document: Document, reason: str, actor: Any) -> Document:
    """Withdraw a document that has not reached the practice; a reason is required."""
    if not reason.strip():
        raise DocumentError("A reason is required to cancel a document.")
    return document_transition(
        document=document, transition="cancel", reason=reason.strip(), actor=actor
    )
