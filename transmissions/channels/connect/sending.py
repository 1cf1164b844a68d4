"""Sending over Connect: check the destination, claim, post once, read the answer.

``connect_document_send`` is Connect's part of one send; the pipeline's
``document_send`` chose Connect for the document (its profile, or no other
channel's rule) and checked it may be sent now. A retry reuses the document's
pending transmission and its idempotency key, so Connect keeps at most one copy
whatever happens between our POST and our commit.

Where a send is retried: nowhere here. A failure that reached no one goes back to
``ready`` with ``next_attempt_at`` set (``engine.outcomes.send_failed``:
exponential backoff, full jitter, never sooner than Connect's Retry-After); the
clock (``pipeline.clock``) queues it when it is due, and the pipeline sweep
(``pipeline.sweep.pipeline_dispatch_due``) queues anything due that nothing else
queued. A POST that may have arrived is never retried: it is settled by key
(``settling``).
"""

from __future__ import annotations

import logging
from typing import Any

from docflow.models import Document, PayloadVersion
from docflow.payloads.store import payload_blob_read
from transmissions.channels.connect.adapter import OutboundDocument
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.directory import destination_refusal
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
    ConnectOutcomeUnknown,
    ConnectRefused,
    ConnectUnavailable,
)
from transmissions.channels.connect.tracking.statuses import transmission_record_posted
from transmissions.engine.channel import RefusedFallback
from transmissions.engine.claims import document_claim
from transmissions.engine.controls import (
    connect_failure_record,
    connect_success_record,
)
from transmissions.engine.leases import claims_kept
from transmissions.engine.outcomes import (
    credentials_halt,
    send_failed,
    send_hold_before,
    send_outcome_unknown,
    send_refused_hold,
)
from transmissions.engine.send_rules import SendOutcome, SendResult
from transmissions.models import HaltKind, OutboundHalt, Transmission

logger = logging.getLogger(__name__)


def outbound_document(
    document: Document, payload: PayloadVersion, stored: bytes | None = None
) -> OutboundDocument:
    """The document as Connect takes it: our fields, and the payload's bytes (from
    its ``stored`` blob when a batch read it ahead)."""
    content = payload_blob_read(
        storage_name=payload.storage_name,
        expected_sha256=payload.sha256,
        stored=stored,
    )
    return OutboundDocument(
        sender_ods_code=document.sending_organisation.ods_code,
        sender_organisation=document.sending_organisation.name,
        sender_department=document.sender_department,
        sender_person=document.sender_person,
        recipient_ods_code=document.destination_ods_code,
        nhs_number=document.nhs_number,
        family_name=document.patient_family_name,
        given_names=document.patient_given_names,
        birth_date=document.patient_birth_date,
        gender=document.patient_gender,
        file_extension=payload.file_extension,
        content=content,
        description=document.description,
        event_date=document.event_date,
        folder_name=document.folder_name,
        notes=document.notes,
        mrn=document.mrn,
        urgent=document.urgent,
        action_required=document.action_required,
        medication_changed=document.medication_changed,
        inpatient=document.inpatient,
        revision=document.replaces_id is not None,
    )


def connect_document_send(
    *,
    document: Document,
    halts: list[OutboundHalt],
    actor: Any = None,
    when_refused: RefusedFallback | None = None,
) -> SendResult:
    """Post one ready document to Connect at most once per claim, and record the
    answer: posted, retry later, held with the code, or outcome unknown. A
    destination Connect does not serve goes to ``when_refused`` (another channel)
    or is held with the code."""
    document_id = document.pk
    organisation = document.sending_organisation
    client = connect_client_for(organisation)
    try:
        refusal = destination_refusal(document, client)
    except (ConnectAuthFailed, ConnectConfigurationError) as exc:
        credentials_halt(sending_organisation=organisation, error=exc)
        return SendResult(SendOutcome.HALTED, document_id, HaltKind.TOKEN_FAILURE)
    except ConnectError as exc:
        connect_failure_record(
            sending_organisation=organisation,
            destination_ods_code=document.destination_ods_code,
            error=str(exc),
        )
        return SendResult(SendOutcome.RETRY, document_id, "destination check failed")
    if refusal is not None:
        return destination_refused(
            document=document, refusal=refusal, when_refused=when_refused
        )

    claimed = document_claim(document_id)
    if isinstance(claimed, str):
        return SendResult(claimed, document_id)
    document, transmission, payload = claimed
    document.sending_organisation = organisation
    try:
        outbound = outbound_document(document, payload)
        with claims_kept([transmission.pk]):
            status, _created = client.post_document(
                idempotency_key=transmission.idempotency_key, document=outbound
            )
    except ConnectError as exc:
        return post_error_read(document, transmission, exc)
    connect_success_record(
        sending_organisation_id=organisation.pk,
        destination_ods_codes=[document.destination_ods_code],
        # Only a circuit that was open when we looked can have let this send through
        # as its trial; none was: skip looking again.
        circuit_open=any(h.kind == HaltKind.CIRCUIT_OPEN for h in halts),
    )
    transmission_record_posted(transmission_id=transmission.pk, status=status)
    return SendResult(SendOutcome.POSTED, document_id, status.guid)


def destination_refused(
    *,
    document: Document,
    refusal: str,
    when_refused: RefusedFallback | None = None,
) -> SendResult:
    """Connect does not serve the destination (DC02, DC03): another channel's send
    where ``when_refused`` finds one (MESH, by the organisation's rule), else held
    with the code."""
    if when_refused is not None:
        result = when_refused(document, refusal)
        if result is not None:
            return result
    return send_hold_before(
        document=document,
        reason=refusal,
        data={"destination": document.destination_ods_code},
    )


def post_error_read(
    document: Document, transmission: Transmission, exc: ConnectError
) -> SendResult:
    """Record what a failed POST means: halted (credentials), retry later, outcome
    unknown (it may have arrived), or held with Connect's codes."""
    organisation = document.sending_organisation
    if isinstance(exc, (ConnectAuthFailed, ConnectConfigurationError)):
        # Nothing was accepted: the token was refused. Stop this organisation.
        credentials_halt(sending_organisation=organisation, error=exc)
        send_failed(document, transmission, exc, count_attempt=False)
        return SendResult(SendOutcome.HALTED, document.pk, HaltKind.TOKEN_FAILURE)
    if isinstance(exc, ConnectOutcomeUnknown):
        connect_failure_record(
            sending_organisation=organisation,
            destination_ods_code=document.destination_ods_code,
            error=str(exc),
        )
        return send_outcome_unknown(document, transmission, exc)
    if isinstance(exc, ConnectRefused):
        return send_refused_hold(
            document=document,
            transmission=transmission,
            error=exc,
            codes=exc.codes or [type(exc).__name__],
        )
    if isinstance(exc, ConnectUnavailable):
        # Retryable: nothing reached Connect.
        connect_failure_record(
            sending_organisation=organisation,
            destination_ods_code=document.destination_ods_code,
            error=str(exc),
        )
        return send_failed(document, transmission, exc)
    raise exc
