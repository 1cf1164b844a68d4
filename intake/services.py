"""Every intake write: source system configuration, and what each MDM event does.

Every channel ends in docflow's ``document_submit`` (the same validation,
idempotency, encryption, audit and pipeline as the REST API); a replacement goes
through ``document_correction_submit`` and a cancel through ``document_cancel`` or,
once the document has gone, a work item for a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import models, transaction

from audit.services import audit_record
from casework.services import work_item_open_for_cancel_after_sending
from docflow.corrections import CorrectionRefused, document_correction_submit
from docflow.models import Document, DocumentStatus
from docflow.services import (
    SUBMISSION_METADATA_FIELDS,
    DocumentError,
    DocumentSubmission,
    IdempotencyConflict,
    IntakeBusy,
    IntakeRefused,
    TransitionRefused,
    document_cancel,
    document_submit,
    submission_fingerprint,
    submission_problems,
)
from docflow.validation import normalise_nhs_number, normalise_ods_code
from intake.mdm import (
    ACCEPTED_TRIGGERS,
    CANCELS,
    REPLACEMENT,
    FieldProblem,
    MdmMessage,
    MessageRejected,
    ack_build,
    mdm_header,
    mdm_read,
    message_parse,
    source_system_for,
)
from intake.models import DocumentTypeMapping, SourceSystem

logger = logging.getLogger(__name__)

CANCELLABLE_STATES = frozenset(
    {
        DocumentStatus.SUBMITTED,
        DocumentStatus.READY,
        DocumentStatus.HELD,
        DocumentStatus.SYSTEM_ERROR,
    }
)


# --- configuration (the admin's writes) -------------------------------------------


def _value(row: models.Model, model_field: models.Field) -> Any:
    value = getattr(row, model_field.attname)
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def _save_audited(row: models.Model, *, entity: str, actor: Any) -> models.Model:
    before = type(row).objects.filter(pk=row.pk).first() if row.pk else None
    fields = [f for f in row._meta.concrete_fields if not f.primary_key]
    changes = {
        f.name: [None if before is None else _value(before, f), _value(row, f)]
        for f in fields
        if before is None or _value(before, f) != _value(row, f)
    }
    row.save()
    audit_record(
        action=f"{entity}.{'created' if before is None else 'changed'}",
        target_type=entity,
        target_id=str(row.pk),
        data={"label": str(row)[:200], "changes": changes},
        actor=actor,
    )
    return row


@transaction.atomic
def source_system_save(*, source_system: SourceSystem, actor: Any) -> SourceSystem:
    """Create or change a source system; the audit event names every changed field."""
    return _save_audited(source_system, entity="source_system", actor=actor)


@transaction.atomic
def source_system_delete(*, source_system: SourceSystem, actor: Any) -> None:
    """Remove a source system (its documents keep their source name); audited."""
    label, pk = str(source_system)[:200], source_system.pk
    source_system.delete()
    audit_record(
        action="source_system.deleted",
        target_type="source_system",
        target_id=str(pk),
        data={"label": label},
        actor=actor,
    )


@transaction.atomic
def document_type_mapping_save(
    *, mapping: DocumentTypeMapping, actor: Any
) -> DocumentTypeMapping:
    """Create or change one text → document type row; audited."""
    return _save_audited(mapping, entity="document_type_mapping", actor=actor)


@transaction.atomic
def document_type_mapping_delete(*, mapping: DocumentTypeMapping, actor: Any) -> None:
    """Remove one text → document type row; audited."""
    label, pk = str(mapping)[:200], mapping.pk
    mapping.delete()
    audit_record(
        action="document_type_mapping.deleted",
        target_type="document_type_mapping",
        target_id=str(pk),
        data={"label": label},
        actor=actor,
    )


# --- one submission, whichever channel it came by ---------------------------------


@dataclass
class IntakeOutcome:
    """What intake did with one message or file: ``accepted`` (new or duplicate)
    or refused with field problems."""

    accepted: bool
    document: Document | None = None
    created: bool = False
    problems: list[FieldProblem] = field(default_factory=list)
    text: str = ""


def refusal_problems(refused: IntakeRefused) -> list[FieldProblem]:
    """The API's field errors (same names and codes) of a refused submission."""
    return [
        FieldProblem(name, code, message)
        for name, problems in refused.errors.items()
        for code, message in problems
    ]


def _all_problems(
    submission: DocumentSubmission | None, found: list[FieldProblem]
) -> list[FieldProblem]:
    """What reading found, plus every rule of intake the rest breaks."""
    problems = list(found)
    if submission is None:
        return problems
    checked = replace(
        submission,
        nhs_number=normalise_nhs_number(submission.nhs_number),
        destination_ods_code=normalise_ods_code(submission.destination_ods_code),
    )
    flagged = {problem.field for problem in found}
    for name, errors in submission_problems(checked).items():
        if name in flagged:
            continue
        problems.extend(FieldProblem(name, code, message) for code, message in errors)
    return problems


def intake_submit(
    *,
    source: SourceSystem,
    unique_id: str,
    submission: DocumentSubmission | None,
    problems: list[FieldProblem],
) -> IntakeOutcome:
    """An original document from a source: stored once per (source, unique id); the
    same id and content again is the same document, other content is refused."""
    if problems or submission is None:
        return IntakeOutcome(False, problems=_all_problems(submission, problems))
    try:
        submitted = document_submit(
            sending_organisation=source.sending_organisation,
            source_system=source.document_source,
            idempotency_key=unique_id,
            submission=submission,
            actor=source,
        )
    except IntakeRefused as refused:
        return IntakeOutcome(False, problems=refusal_problems(refused))
    except IdempotencyConflict:
        return IntakeOutcome(
            False,
            problems=[
                FieldProblem(
                    "idempotency_key",
                    "idempotency_conflict",
                    "This unique document id was already used for other content; "
                    "send a replacement (MDM^T10) to correct a document.",
                )
            ],
        )
    document, created = submitted
    return IntakeOutcome(
        True,
        document=document,
        created=created,
        text=f"{'Accepted' if created else 'Already accepted'} as {document.public_id}",
    )


def _versions(document: Document) -> tuple[Document, list[Document]]:
    """The newest version in a document's replacement chain, and the whole chain."""
    chain = [document]
    while (newer := Document.objects.filter(replaces=chain[-1]).first()) is not None:
        chain.append(newer)
    return chain[-1], chain


def intake_replace(
    *,
    source: SourceSystem,
    unique_id: str,
    parent_id: str,
    submission: DocumentSubmission | None,
    problems: list[FieldProblem],
) -> IntakeOutcome:
    """A replacement (MDM^T10): a corrected version of the newest version of the
    document it names (TXA-13, else TXA-12), linked to it and sent with Revision;
    the replaced version is cancelled when it has not gone yet. Resent, it is the
    same corrected version."""
    if problems or submission is None:
        return IntakeOutcome(False, problems=_all_problems(submission, problems))
    key = parent_id or unique_id
    original = Document.objects.filter(
        source_system=source.document_source, idempotency_key=key
    ).first()
    if original is None:
        return IntakeOutcome(
            False,
            problems=[
                FieldProblem(
                    "replaces",
                    "not_found",
                    "No document from this source has this unique id to replace.",
                )
            ],
        )
    submission.nhs_number = normalise_nhs_number(submission.nhs_number)
    submission.destination_ods_code = normalise_ods_code(
        submission.destination_ods_code
    )
    try:
        with transaction.atomic():
            Document.objects.select_for_update().filter(pk=original.pk).first()
            latest, chain = _versions(original)
            # The corrected version keeps the source's reference, as a person's
            # correction does: its fingerprint is then this message's.
            submission.source_reference = latest.source_reference
            fingerprint = submission_fingerprint(submission)
            same = next((d for d in chain if d.fingerprint == fingerprint), None)
            if same is not None:
                return IntakeOutcome(
                    True, document=same, text=f"Already accepted as {same.public_id}"
                )
            changes = {
                name: getattr(submission, name)
                for name in SUBMISSION_METADATA_FIELDS
                if name != "source_reference"
                and getattr(submission, name) != getattr(latest, name)
            }
            new = document_correction_submit(
                document=latest,
                actor=source,
                reason=f"Replacement (MDM^{REPLACEMENT}) from {source.code}",
                content=submission.content,
                declared_extension=submission.declared_extension,
                changes=changes,
            )
            if latest.status in CANCELLABLE_STATES:
                document_cancel(
                    document=latest,
                    reason=f"Replaced by a corrected version ({new.public_id})",
                    actor=source,
                )
    except IntakeRefused as refused:
        return IntakeOutcome(False, problems=refusal_problems(refused))
    except CorrectionRefused as refused:
        return IntakeOutcome(
            False, problems=[FieldProblem("content", refused.code, str(refused))]
        )
    return IntakeOutcome(
        True,
        document=new,
        created=True,
        text=f"Corrected version {new.public_id} replaces {latest.public_id}",
    )


def intake_cancel(
    *, source: SourceSystem, unique_id: str, trigger: str
) -> IntakeOutcome:
    """A cancel (MDM^T03/T11): the newest version is cancelled if it has not gone;
    once sent, one work item asks a person to decide on recall or resolution."""
    original = Document.objects.filter(
        source_system=source.document_source, idempotency_key=unique_id
    ).first()
    if original is None:
        return IntakeOutcome(
            False,
            problems=[
                FieldProblem(
                    "idempotency_key",
                    "not_found",
                    "No document from this source has this unique id.",
                )
            ],
        )
    latest, _chain = _versions(original)
    if latest.status == DocumentStatus.CANCELLED:
        return IntakeOutcome(True, document=latest, text="Already cancelled")
    if latest.status in CANCELLABLE_STATES:
        try:
            document_cancel(
                document=latest,
                reason=f"Cancelled by the source system (MDM^{trigger})",
                actor=source,
            )
        except TransitionRefused:
            pass  # it moved on meanwhile: a person decides, below
        else:
            return IntakeOutcome(True, document=latest, text="Cancelled")
    _item, opened = work_item_open_for_cancel_after_sending(
        document=latest, actor=source, trigger=trigger
    )
    return IntakeOutcome(
        True,
        document=latest,
        text=(
            "Already sent: a person will decide on recall"
            if opened
            else "Already sent: a person is already looking at it"
        ),
    )


# --- MLLP: one message in, one ACK out --------------------------------------------


@dataclass(frozen=True)
class Peer:
    """What the listener knows of the connection a message came on."""

    tls: bool
    certificate_sha256: str = ""  # of the client certificate, lower-case hex


def mdm_receive(*, text: str, peer: Peer) -> str:
    """Answer one MDM message: AA only once its effect is committed; AE with one ERR
    per field error (the API's codes); AR for what cannot be taken at all, and for
    what cannot be taken now (intake backpressure: resend later)."""
    message = None
    control_id = ""
    try:
        message = message_parse(text)
        mdm = mdm_header(message)
        control_id = mdm.control_id
        if mdm.trigger not in ACCEPTED_TRIGGERS:
            raise MessageRejected(
                f"Event {mdm.trigger or '(none)'} is not taken: send MDM^T02, T10, "
                "T03 or T11.",
                code="unsupported_event",
            )
        source = source_system_for(mdm)
        _check_peer(source, peer)
        outcome = mdm_apply(mdm, source=source)
    except MessageRejected as rejected:
        logger.info("mllp message rejected: %s", rejected.code)
        return ack_build(
            message, code="AR", text=rejected.reason, control_id=control_id
        )
    except IntakeBusy as busy:
        # AR: not taken for a reason unrelated to its content; the sender resends.
        logger.warning("mllp message deferred: intake busy")
        return ack_build(
            message,
            code="AR",
            text=(
                "Busy: nothing was stored; send this message again in "
                f"{busy.retry_after} seconds."
            ),
            control_id=control_id,
        )
    except DocumentError as error:
        logger.warning("mllp message refused: %s", type(error).__name__)
        return ack_build(message, code="AE", text="Refused by a document rule")
    if outcome.accepted:
        return ack_build(message, code="AA", text=outcome.text)
    logger.info(
        "mllp message refused: %s",
        ",".join(sorted({f"{p.field}:{p.code}" for p in outcome.problems})),
    )
    return ack_build(
        message,
        code="AE",
        text="One or more fields are invalid.",
        problems=outcome.problems,
    )


def _check_peer(source: SourceSystem, peer: Peer) -> None:
    wanted = source.certificate_fingerprint
    if wanted and (not peer.tls or peer.certificate_sha256 != wanted):
        raise MessageRejected(
            "This source system must connect with its client certificate.",
            code="certificate_required",
        )


def mdm_apply(mdm: MdmMessage, *, source: SourceSystem) -> IntakeOutcome:
    """Do what one MDM event asks of the document it names."""
    mdm_read(mdm, source=source)
    if mdm.trigger in CANCELS:
        if mdm.problems:
            return IntakeOutcome(False, problems=mdm.problems)
        return intake_cancel(
            source=source, unique_id=mdm.unique_id, trigger=mdm.trigger
        )
    if mdm.trigger == REPLACEMENT:
        return intake_replace(
            source=source,
            unique_id=mdm.unique_id,
            parent_id=mdm.parent_id,
            submission=mdm.submission,
            problems=mdm.problems,
        )
    return intake_submit(
        source=source,
        unique_id=mdm.unique_id,
        submission=mdm.submission,
        problems=mdm.problems,
    )
