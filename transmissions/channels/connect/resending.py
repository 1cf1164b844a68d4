"""Resolutions that reach Connect: resend a document Connect already holds (a new
GUID linked to the old), and mark a rejection resolved there (6000).

Casework moves the document and queues these by dotted task name; it never imports
this app (DESIGN §1).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from audit.services import audit_record
from docflow.models import Document, DocumentStatus
from docflow.services import TransitionRefused, document_transition
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
    ConnectOutcomeUnknown,
    ConnectRefused,
    ConnectUnavailable,
)
from transmissions.channels.connect.tracking.statuses import (
    transmission_apply_status,
    transmission_record_posted,
)
from transmissions.engine.controls import (
    connect_failure_record,
    connect_success_record,
    outbound_blocking_halt,
)
from transmissions.engine.moves import document_move
from transmissions.engine.outcomes import (
    credentials_halt,
    send_failed,
    send_refused_hold,
    transmission_error_record,
)
from transmissions.engine.send_rules import SendOutcome, SendResult
from transmissions.models import HaltKind, Transmission, TransmissionState

S = DocumentStatus


def _previous_at_connect(document: Document) -> Transmission | None:
    return (
        Transmission.objects.filter(document=document)
        .exclude(external_id="")
        .order_by("-created_at", "-id")
        .first()
    )


@transaction.atomic
def _claim_resend(document_id: int, previous: Transmission):
    try:
        document = document_transition(
            document=Document(pk=document_id), transition="claim_for_sending"
        )
    except (TransitionRefused, Document.DoesNotExist):
        return None
    transmission = (
        Transmission.objects.select_for_update()
        .filter(document=document, state=TransmissionState.PENDING)
        .first()
    )
    if transmission is None:
        transmission = Transmission.objects.create(
            document=document,
            payload_version=previous.payload_version,
            sending_organisation_id=document.sending_organisation_id,
            channel=previous.channel,
            destination_ods_code=document.destination_ods_code,
            document_type=document.document_type,
            idempotency_key=f"docflow-{uuid.uuid4()}",
            resend_of=previous,
        )
    transmission.attempts += 1
    transmission.save(update_fields=["attempts", "updated_at"])
    return document, transmission


def connect_document_resend(*, document_id: int, actor: Any = None) -> SendResult:
    """Ask Connect to resend the document it already holds (to the document's
    current destination, which a reroute may have changed); the new GUID is a new
    transmission linked to the old one. Same safety rules as a first send."""
    document = Document.objects.select_related("sending_organisation").get(
        pk=document_id
    )
    if document.status != S.READY:
        return SendResult(SendOutcome.NOT_READY, document_id)
    previous = _previous_at_connect(document)
    if previous is None:
        return SendResult(SendOutcome.NOT_READY, document_id, "never at Connect")
    organisation = document.sending_organisation
    halt = outbound_blocking_halt(
        sending_organisation_id=organisation.pk,
        destination_ods_code=document.destination_ods_code,
    )
    if halt is not None:
        return SendResult(SendOutcome.HALTED, document_id, halt.kind)
    claimed = _claim_resend(document_id, previous)
    if claimed is None:
        return SendResult(SendOutcome.NOT_READY, document_id)
    document, transmission = claimed
    rerouted = transmission.destination_ods_code != previous.destination_ods_code
    client = connect_client_for(organisation)
    try:
        status = client.resend(
            previous.external_id,
            idempotency_key=transmission.idempotency_key,
            recipient_ods_code=transmission.destination_ods_code if rerouted else None,
        )
    except (ConnectAuthFailed, ConnectConfigurationError) as exc:
        credentials_halt(sending_organisation=organisation, error=exc)
        send_failed(document, transmission, exc, count_attempt=False)
        return SendResult(SendOutcome.HALTED, document_id, HaltKind.TOKEN_FAILURE)
    except ConnectUnavailable as exc:
        connect_failure_record(
            sending_organisation=organisation,
            error=str(exc),
            destination_ods_code=transmission.destination_ods_code,
        )
        return send_failed(document, transmission, exc)
    except ConnectOutcomeUnknown as exc:
        with transaction.atomic():
            document_move(
                document=document,
                transition="mark_outcome_unknown",
                reason="TIMEOUT_AFTER_RESEND",
                data={"transmission": str(transmission.public_id)},
            )
            transmission_error_record(transmission, exc)
        return SendResult(SendOutcome.OUTCOME_UNKNOWN, document_id)
    except ConnectRefused as exc:
        return send_refused_hold(
            document=document,
            transmission=transmission,
            error=exc,
            codes=exc.codes or [type(exc).__name__],
        )
    connect_success_record(
        sending_organisation_id=organisation.pk,
        destination_ods_codes=[transmission.destination_ods_code],
    )
    with transaction.atomic():
        audit_record(
            action="transmission.resend_requested",
            target_type="document",
            target_id=str(document.public_id),
            data={
                "transmission": str(transmission.public_id),
                "resend_of": previous.external_id,
                "guid": status.guid,
                "destination": transmission.destination_ods_code,
                "rerouted": rerouted,
            },
            actor=actor,
        )
        transmission_record_posted(
            transmission_id=transmission.pk, status=status, actor=actor
        )
    return SendResult(SendOutcome.POSTED, document_id, status.guid)


class ResolveOutcome:
    """What telling Connect about a resolved rejection came to."""

    RESOLVED = "resolved"
    NOT_RESOLVABLE = "not_resolvable"
    FAILED = "failed"


def rejection_resolve_at_connect(
    *, document_id: int, note: str, actor: Any = None
) -> str:
    """Mark a rejected (or system-error) document resolved at Connect (6000) and
    mirror it: the document becomes ``rejection_resolved`` (if a person's decision has
    not made it so already). The note is free text from a person; it must not carry
    patient identifiers."""
    document = Document.objects.select_related("sending_organisation").get(
        pk=document_id
    )
    # Already resolved here (by a person's casework decision): tell Connect too.
    if document.status not in (S.REJECTED, S.SYSTEM_ERROR, S.REJECTION_RESOLVED):
        return ResolveOutcome.NOT_RESOLVABLE
    transmission = _previous_at_connect(document)
    if transmission is None:
        return ResolveOutcome.NOT_RESOLVABLE
    client = connect_client_for(document.sending_organisation)
    try:
        status = client.resolve(transmission.external_id, note=note)
    except ConnectError:
        return ResolveOutcome.FAILED  # the caller's task retries; nothing changed
    with transaction.atomic():
        transmission = (
            Transmission.objects.select_for_update(of=("self",))
            .select_related("document", "payload_version", "document__destination")
            .get(pk=transmission.pk)
        )
        audit_record(
            action="transmission.rejection_resolved",
            target_type="document",
            target_id=str(document.public_id),
            data={"guid": transmission.external_id, "status_code": status.status_code},
            actor=actor,
        )
        document = transmission_apply_status(
            transmission=transmission, status=status, actor=actor
        )
    if document.status != S.REJECTION_RESOLVED:
        return ResolveOutcome.FAILED
    return ResolveOutcome.RESOLVED
