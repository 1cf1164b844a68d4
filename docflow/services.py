"""Every write to the document domain. Each service is atomic and audited."""

from __future__ import annotations

import copy
import datetime
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any

import rfc8785
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed
from django_q.tasks import async_task
from simple_history.models import HistoricalRecords

from audit.models import AuditEvent
from audit.services import EventSpec, audit_record, audit_record_many
from docflow.media import MediaRefused, SniffedMedia, vet_upload
from docflow.models import (
    Document,
    DocumentType,
    Gender,
    PayloadStage,
    PayloadVersion,
    PreparationWakeUp,
    SendingOrganisation,
)
from docflow.payload_store import StoredBlob, payload_blob_delete, payload_blob_write
from docflow.validation import (
    CONNECT_LENGTH_LIMITS,
    normalise_nhs_number,
    normalise_ods_code,
    validate_birth_date,
    validate_length,
    validate_nhs_number,
    validate_not_future,
    validate_ods_code,
)

logger = logging.getLogger(__name__)


class DocumentError(Exception):
    """A domain rule refused the request."""


class IntakeRefused(DocumentError):
    """The submission is invalid; ``errors`` maps each field to its problems."""

    def __init__(self, errors: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__("The document was refused.")
        self.errors = errors


class IdempotencyConflict(DocumentError):
    """The idempotency key was used before for a different document."""


class TransitionRefused(DocumentError):
    """The document is not in a state that allows this change."""


class TransitionConflict(DocumentError):
    """A document changed after it was read for a batch of transitions: the
    caller's transaction must roll back (it never half-applies)."""


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
        check("nhs_number", validate_nhs_number, submission.nhs_number)
    if submission.destination_ods_code:
        check(
            "destination_ods_code", validate_ods_code, submission.destination_ods_code
        )
    if submission.patient_birth_date:
        check("patient_birth_date", validate_birth_date, submission.patient_birth_date)
    if submission.event_date:
        check("event_date", validate_not_future, submission.event_date)
    if submission.document_type and submission.document_type not in DocumentType.values:
        errors.setdefault("document_type", []).append(
            ("invalid_choice", "Unknown document type.")
        )
    if submission.patient_gender and submission.patient_gender not in Gender.values:
        errors.setdefault("patient_gender", []).append(
            ("invalid_choice", "Unknown gender.")
        )
    for name in CONNECT_LENGTH_LIMITS:
        check(name, lambda v, n=name: validate_length(n, v), getattr(submission, name))
    return errors


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


def _existing_for_key(*, source_system: str, idempotency_key: str, fingerprint: str):
    existing = (
        Document.objects.filter(
            source_system=source_system, idempotency_key=idempotency_key
        )
        .only("id", "public_id", "fingerprint")
        .first()
    )
    if existing is None:
        return None
    if existing.fingerprint != fingerprint:
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
) -> Submitted:
    """Store a new document once per idempotency key; replays return the original.

    Returns ``(document, created)``. Nothing is stored when the submission is refused.
    """
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
    if not idempotency_key or len(idempotency_key) > 128:
        errors.setdefault("idempotency_key", []).append(
            ("invalid", "An Idempotency-Key of 1 to 128 characters is required.")
        )
    if errors:
        raise IntakeRefused(errors)
    assert sniffed is not None

    fingerprint = submission_fingerprint(submission)
    # Insert first and let the unique constraint find replays: new documents are the
    # common case and pay for no extra read; a replay costs a discarded blob.
    blob = payload_blob_write(submission.content)
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
            blob=blob,
            actor=actor,
        )
    except IntegrityError:
        # The key is taken, by an earlier or a concurrent request: replay or conflict.
        payload_blob_delete(blob.storage_name)
        replay = _existing_for_key(
            source_system=source_system,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
        if replay is None:
            raise
        return Submitted(replay, False)
    except BaseException:
        payload_blob_delete(blob.storage_name)
        raise
    return Submitted(document, True, payload_version=version, audit_event=event)


def _wake_up_row_for_update() -> PreparationWakeUp:
    wake = PreparationWakeUp.objects.select_for_update().filter(pk=1).first()
    if wake is None:
        try:
            with transaction.atomic():
                PreparationWakeUp.objects.create(pk=1)
        except IntegrityError:
            pass  # made a moment ago by a concurrent writer
        wake = PreparationWakeUp.objects.select_for_update().get(pk=1)
    return wake


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
    if _wake_up_row_for_update().pending:
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
    blob,
    actor,
) -> tuple[Document, PayloadVersion, AuditEvent]:
    metadata = submission.metadata()
    document = Document.objects.create(
        sending_organisation=sending_organisation,
        source_system=source_system,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        status_changed_at=timezone.now(),
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
        },
        actor=actor,
    )
    return document, version, event


def _history_user_of_request() -> Any:
    """Who simple-history would name for a save in this request: the signed-in
    user, or nobody (tasks, commands)."""
    user = getattr(getattr(HistoricalRecords.context, "request", None), "user", None)
    return user if getattr(user, "is_authenticated", False) else None


class DocumentTransitions:
    """Lifecycle edges for many documents, applied on their locked rows in memory
    and written together: one UPDATE per resulting (state, reason), one INSERT of
    history rows (one per edge, as a save would have made it) and the audit events
    chained in one go. The statements per edge fall from eight to about one, which
    is what lets the engine move documents in batches.

    Use inside a transaction: ``lock`` the rows, ``apply`` edges (refusals raise
    :class:`TransitionRefused` before anything is written), queue further events
    with ``audit`` in the order they happened, then ``flush``.
    """

    def __init__(self) -> None:
        self.now = timezone.now()
        self._initial: dict[int, str] = {}
        self._changed: dict[int, Document] = {}
        self._destinations: dict[int, int | None] = {}
        self._history: list[Document] = []
        self._events: list[EventSpec] = []

    @staticmethod
    def lock(document_ids) -> dict[int, Document]:
        """Lock these documents (in id order, as every batch does) and read them."""
        return {
            document.pk: document
            for document in Document.objects.select_for_update(of=("self",))
            .filter(pk__in=list(document_ids))
            .order_by("pk")
        }

    @staticmethod
    def refusal(document: Document, transition: str) -> str | None:
        """Why ``transition`` cannot be taken from the document's state, or None."""
        method = getattr(document, transition, None)
        if method is None or not hasattr(method, "_django_fsm"):
            return f"{transition} is not a document transition"
        if not can_proceed(method):
            return (
                f"A document that is {document.status} cannot "
                f"{transition.replace('_', ' ')}."
            )
        return None

    def apply(
        self,
        document: Document,
        transition: str,
        *,
        actor: Any = None,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> Document:
        """Take one edge on a locked document, in memory; written by ``flush``."""
        refused = self.refusal(document, transition)
        if refused:
            raise TransitionRefused(refused)
        previous = document.status
        self._initial.setdefault(document.pk, previous)
        getattr(document, transition)()
        document.status_changed_at = self.now
        document.status_reason = reason[:255]
        document.updated_at = self.now
        self._changed[document.pk] = document
        snapshot = copy.copy(document)
        snapshot._change_reason = reason or transition
        snapshot._history_date = timezone.now()
        self._history.append(snapshot)
        self.audit(
            action=f"document.{transition}",
            target_type="document",
            target_id=str(document.public_id),
            # Caller data first, so it can never overwrite the recorded edge.
            data={
                **(data or {}),
                "from": previous,
                "to": document.status,
                "reason": reason,
            },
            actor=actor,
        )
        return document

    def audit(
        self,
        *,
        action: str,
        target_type: str,
        target_id: str,
        data: dict[str, Any] | None = None,
        actor: Any = None,
    ) -> None:
        """Queue an event to chain with the edges, after those applied so far."""
        self._events.append(EventSpec(action, target_type, str(target_id), data, actor))

    def set_destination(self, document: Document, destination) -> None:
        """Record the resolved destination with the document's next edge (its
        history row shows it); written by ``flush``."""
        document.destination = destination
        self._destinations[document.pk] = destination.pk if destination else None

    def forget(self, document: Document) -> None:
        """Drop what was queued for one document (its work was rolled back)."""
        target = str(document.public_id)
        self._initial.pop(document.pk, None)
        self._changed.pop(document.pk, None)
        self._destinations.pop(document.pk, None)
        self._history = [h for h in self._history if h.pk != document.pk]
        self._events = [e for e in self._events if e.target_id != target]

    def flush(self) -> None:
        """Write every edge applied and event queued since the last flush. Each
        UPDATE is conditional on the state the documents were read in: a row that
        moved meanwhile (a stale read) fails the whole change, nothing half done."""
        unset = object()
        groups: dict[tuple, list[int]] = defaultdict(list)
        for document in self._changed.values():
            key = (
                self._initial[document.pk],
                document.status,
                document.status_reason,
                self._destinations.pop(document.pk, unset),
            )
            groups[key].append(document.pk)
        for (initial, status, reason, destination_id), pks in groups.items():
            also = {} if destination_id is unset else {"destination_id": destination_id}
            updated = Document.objects.filter(pk__in=pks, status=initial).update(
                status=status,
                status_changed_at=self.now,
                status_reason=reason,
                updated_at=self.now,
                **also,
            )
            if updated != len(pks):
                raise TransitionConflict(
                    f"{len(pks) - updated} of {len(pks)} documents were no longer "
                    f"{initial}; nothing was changed."
                )
        if self._history:
            Document.history.bulk_history_create(
                self._history, update=True, default_user=_history_user_of_request()
            )
        audit_record_many(self._events)
        for pk, destination_id in self._destinations.items():
            # Resolved without an edge to carry it (none so far in this batch).
            Document.objects.filter(pk=pk).update(
                destination_id=destination_id, updated_at=self.now
            )
        self._initial, self._changed, self._history, self._events = {}, {}, [], []
        self._destinations = {}


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
