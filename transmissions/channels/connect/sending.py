"""Sending: claim a ready document, post it once per attempt, classify the answer.

A retry reuses the document's pending transmission and its idempotency key, so Connect
keeps at most one copy whatever happens between our POST and our commit. A retry is
due at its transmission's ``next_attempt_at`` (exponential backoff, full jitter,
never sooner than Connect's Retry-After); the clock queues it then. A claim holds
a lease its worker renews while it posts (``leases``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from casework.services import work_item_sync_for_document
from docflow.directory import organisation_record_lookup
from docflow.models import (
    Channel,
    Document,
    DocumentStatus,
    PayloadVersion,
)
from docflow.payload_store import payload_blob_read
from docflow.selectors import document_current_payload
from docflow.services import TransitionRefused, document_transition
from transmissions.channels.connect.adapter import OutboundDocument
from transmissions.channels.connect.client import ConnectClient
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
    ConnectOutcomeUnknown,
    ConnectRefused,
    ConnectUnavailable,
)
from transmissions.channels.connect.tracking.statuses import transmission_record_posted
from transmissions.channels.mesh.routing import (
    mesh_route_for,
    mesh_route_when_connect_refuses,
)
from transmissions.engine.controls import (
    connect_failure_record,
    connect_success_record,
    outbound_halt_open,
    outbound_halts_open,
)
from transmissions.engine.leases import claims_kept, lease_expiry
from transmissions.engine.send_rules import (
    DESTINATION_PAUSED,
    SendOutcome,
    SendResult,
    destination_paused,
    document_not_sendable_now,
    is_split_parent,
    send_retry_ceiling,
    send_retry_delay,
)
from transmissions.models import HaltKind, Transmission, TransmissionState

logger = logging.getLogger(__name__)

# Named here too: the rules are read from this module by the other senders.
__all__ = [
    "DESTINATION_PAUSED",
    "SendOutcome",
    "SendResult",
    "destination_paused",
    "document_not_sendable_now",
    "document_send",
    "is_split_parent",
    "send_retry_ceiling",
    "send_retry_delay",
]


def _transition(document, transition, *, reason="", data=None, actor=None):
    document = document_transition(
        document=document, transition=transition, reason=reason, data=data, actor=actor
    )
    work_item_sync_for_document(document=document, actor=actor)
    return document


def _outbound(document: Document, payload: PayloadVersion) -> OutboundDocument:
    content = payload_blob_read(
        storage_name=payload.storage_name, expected_sha256=payload.sha256
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


def _destination_refusal(document: Document, client: ConnectClient) -> str | None:
    """Re-check the destination when our knowledge of it is older than the TTL.

    Returns a hold reason code (DC02 inactive, DC03 not receiving) or None.
    """
    destination = document.destination
    ttl = timedelta(seconds=settings.DOCFLOW_DESTINATION_TTL_SECONDS)
    if (
        destination is not None
        and destination.last_verified_at is not None
        and timezone.now() - destination.last_verified_at < ttl
    ):
        return None if destination.is_active else "DC02"
    found = client.organisation(document.destination_ods_code)
    organisation_record_lookup(
        ods_code=document.destination_ods_code,
        found=found is not None,
        is_active=bool(found and found.is_active),
        is_receiving=bool(found and found.is_receiving),
        endpoint_type=found.endpoint_type if found else "",
        name=found.name if found else "",
    )
    if found is None or not found.is_active:
        return "DC02"
    if not found.is_receiving:
        return "DC03"
    return None


def _first_transmission(
    *,
    document_id: int,
    payload: PayloadVersion | None,
    sending_organisation_id: int,
    destination_ods_code: str,
    channel: str = Channel.CONNECT,
    key: str | None = None,
    fields: dict[str, str] | None = None,
) -> Transmission:
    """A document's first attempt, unsaved: a new idempotency key (MESH: the
    local id) that every retry of this transmission reuses."""
    return Transmission(
        document_id=document_id,
        payload_version=payload,
        sending_organisation_id=sending_organisation_id,
        channel=channel,
        destination_ods_code=destination_ods_code,
        idempotency_key=key or f"docflow-{uuid.uuid4()}",
        attempts=1,
        **(fields or {}),
    )


@transaction.atomic
def _claim(
    document_id: int,
    *,
    channel: str = Channel.CONNECT,
    new_key: str | None = None,
    fields: dict[str, str] | None = None,
) -> tuple[Document, Transmission, PayloadVersion] | str:
    """Claim ``ready`` -> ``sending`` under a row lock and ready its transmission.

    A new transmission goes by ``channel`` under ``new_key`` (MESH: the local id)
    with ``fields``; a route a rule chose (``route_reason``) is audited with it.

    The document is locked and checked first and the transmission written before
    the claim's audit event: that event holds the audit chain until commit, so the
    less that follows it, the less every other writer waits.
    """
    ready = (
        Document.objects.select_for_update()
        .filter(pk=document_id, status=DocumentStatus.READY)
        .values_list("sending_organisation_id", "destination_ods_code")
        .first()
    )
    if ready is None:
        return SendOutcome.NOT_READY
    sending_organisation_id, destination_ods_code = ready
    transmission = (
        Transmission.objects.select_for_update(of=("self",))
        .select_related("payload_version")
        .filter(document_id=document_id, state=TransmissionState.PENDING)
        .first()
    )
    due = transmission.next_attempt_at if transmission else None
    if due and due > timezone.now():
        return SendOutcome.NOT_DUE  # backing off after a failed attempt
    if transmission is None:
        payload = document_current_payload(document=Document(pk=document_id))
        transmission = _first_transmission(
            document_id=document_id,
            payload=payload,
            sending_organisation_id=sending_organisation_id,
            destination_ods_code=destination_ods_code,
            channel=channel,
            key=new_key,
            fields=fields,
        )
        transmission.lease_expires_at = lease_expiry()
        transmission.save(force_insert=True)
        if transmission.route_reason:
            audit_record(
                action="transmission.routed",
                target_type="document",
                target_id=str(transmission.document.public_id),
                data={
                    "transmission": str(transmission.public_id),
                    "channel": channel,
                    "reason": transmission.route_reason,
                    "workflow": transmission.workflow_id,
                    "recipient_mailbox": transmission.recipient_mailbox,
                },
            )
    else:
        # Retries send the very bytes the key was first used for.
        payload = transmission.payload_version
        transmission.attempts += 1
        transmission.lease_expires_at = lease_expiry()
        transmission.save(update_fields=["attempts", "lease_expires_at", "updated_at"])
    document = document_transition(
        document=Document(pk=document_id), transition="claim_for_sending"
    )
    transmission.document = document
    return document, transmission, payload


def document_send(*, document_id: int, actor: Any = None) -> SendResult:
    """Post one ready document to Connect at most once per claim, and record the
    answer: posted, retry later, held with the code, or outcome unknown."""
    document = Document.objects.select_related(
        "sending_organisation", "destination"
    ).get(pk=document_id)
    organisation = document.sending_organisation
    halts = outbound_halts_open(sending_organisation_id=organisation.pk)
    stopped = document_not_sendable_now(document, halts=halts, paused={})
    if stopped is not None:
        return stopped

    # Routing: MESH where the profile or the organisation's rule says so.
    route = mesh_route_for(document=document)
    if route is not None:
        return _send_over_mesh(document, route, actor)
    client = connect_client_for(organisation)
    try:
        refusal = _destination_refusal(document, client)
    except (ConnectAuthFailed, ConnectConfigurationError) as exc:
        _halt_for_credentials(organisation, exc)
        return SendResult(SendOutcome.HALTED, document_id, HaltKind.TOKEN_FAILURE)
    except ConnectError as exc:
        connect_failure_record(
            sending_organisation=organisation,
            destination_ods_code=document.destination_ods_code,
            error=str(exc),
        )
        return SendResult(SendOutcome.RETRY, document_id, "destination check failed")
    if refusal is not None:
        return _refused_destination(document, refusal, actor)

    claimed = _claim(document_id)
    if isinstance(claimed, str):
        return SendResult(claimed, document_id)
    document, transmission, payload = claimed
    document.sending_organisation = organisation
    try:
        outbound = _outbound(document, payload)
        with claims_kept([transmission.pk]):
            status, _created = client.post_document(
                idempotency_key=transmission.idempotency_key, document=outbound
            )
    except ConnectError as exc:
        return _after_post_error(document, transmission, exc)
    connect_success_record(
        sending_organisation_id=organisation.pk,
        destination_ods_codes=[document.destination_ods_code],
        # Only a circuit that was open when we looked can have let this send through
        # as its trial; none was: skip looking again.
        circuit_open=any(h.kind == HaltKind.CIRCUIT_OPEN for h in halts),
    )
    transmission_record_posted(transmission_id=transmission.pk, status=status)
    return SendResult(SendOutcome.POSTED, document_id, status.guid)


def _refused_destination(document: Document, refusal: str, actor: Any) -> SendResult:
    """Connect does not serve the destination (DC02, DC03): over MESH where the
    organisation's rule allows it, else held with the code."""
    route = mesh_route_when_connect_refuses(document=document, refusal=refusal)
    if route is not None:
        return _send_over_mesh(document, route, actor)
    with transaction.atomic():
        try:
            _transition(
                document,
                "hold_before_send",
                reason=refusal,
                data={"destination": document.destination_ods_code},
            )
        except TransitionRefused:
            return SendResult(SendOutcome.NOT_READY, document.pk)
    return SendResult(SendOutcome.HELD, document.pk, refusal)


def _after_post_error(
    document: Document, transmission: Transmission, exc: ConnectError
) -> SendResult:
    """Record what a failed POST means: halted (credentials), retry later, outcome
    unknown (it may have arrived), or held with Connect's codes."""
    organisation = document.sending_organisation
    if isinstance(exc, (ConnectAuthFailed, ConnectConfigurationError)):
        # Nothing was accepted: the token was refused. Stop this organisation.
        _halt_for_credentials(organisation, exc)
        _after_failure(document, transmission, exc, count_attempt=False)
        return SendResult(SendOutcome.HALTED, document.pk, HaltKind.TOKEN_FAILURE)
    if isinstance(exc, ConnectOutcomeUnknown):
        connect_failure_record(
            sending_organisation=organisation,
            destination_ods_code=document.destination_ods_code,
            error=str(exc),
        )
        return _after_unknown_outcome(document, transmission, exc)
    if isinstance(exc, ConnectRefused):
        codes = exc.codes or [type(exc).__name__]
        with transaction.atomic():
            _record_error(transmission, exc, state=TransmissionState.ABANDONED)
            _transition(
                document,
                "hold_after_send_attempt",
                reason=codes[0],
                data={"codes": codes, "transmission": str(transmission.public_id)},
            )
        return SendResult(SendOutcome.HELD, document.pk, ",".join(codes))
    if isinstance(exc, ConnectUnavailable):
        # Retryable: nothing reached Connect.
        connect_failure_record(
            sending_organisation=organisation,
            destination_ods_code=document.destination_ods_code,
            error=str(exc),
        )
        return _after_failure(document, transmission, exc)
    raise exc


def _send_over_mesh(document: Document, route, actor: Any) -> SendResult:
    # Imported here: the MESH sender builds on this module's claim and failure
    # handling.
    from transmissions.channels.mesh.sending import mesh_document_send

    return mesh_document_send(document=document, route=route, actor=actor)


def _record_error(
    transmission: Transmission, exc: ConnectError, *, state: str | None = None
) -> None:
    transmission.last_error_class = exc.error_class[:32]
    fields = ["last_error_class", "updated_at"]
    if state:
        transmission.state = state
        fields.append("state")
    transmission.save(update_fields=fields)


@transaction.atomic
def _after_unknown_outcome(
    document: Document, transmission: Transmission, exc: ConnectError
) -> SendResult:
    """The POST may have reached Connect: never resend blindly, let the key settle it.

    While we waited for the answer the changes feed may already have matched our
    idempotency key and moved the document on: then Connect has it, and that stands.
    """
    try:
        _transition(
            document,
            "mark_outcome_unknown",
            reason="TIMEOUT_AFTER_SEND",
            data={"transmission": str(transmission.public_id)},
        )
    except TransitionRefused:
        return SendResult(
            SendOutcome.POSTED, document.pk, "recorded from the changes feed"
        )
    _record_error(transmission, exc)
    return SendResult(SendOutcome.OUTCOME_UNKNOWN, document.pk)


def _halt_for_credentials(organisation, exc: ConnectError) -> None:
    outbound_halt_open(
        kind=HaltKind.TOKEN_FAILURE,
        reason=str(exc)[:255],
        sending_organisation=organisation,
    )


def _after_failure(
    document: Document,
    transmission: Transmission,
    exc: ConnectError,
    *,
    count_attempt: bool = True,
) -> SendResult:
    """Nothing reached Connect: back to ``ready`` with backoff, or held when spent."""
    try:
        return _retry_or_hold(document, transmission, exc, count_attempt=count_attempt)
    except TransitionRefused:
        # The document moved on while we posted (the stuck-sending check took it
        # after a very slow failure): that state stands, and so does its settling.
        return SendResult(SendOutcome.NOT_READY, document.pk, "moved on meanwhile")


@transaction.atomic
def _retry_or_hold(
    document: Document,
    transmission: Transmission,
    exc: ConnectError,
    *,
    count_attempt: bool,
) -> SendResult:
    if count_attempt and transmission.attempts >= settings.DOCFLOW_SEND_MAX_ATTEMPTS:
        _record_error(transmission, exc)
        _transition(
            document,
            "hold_after_send_attempt",
            reason="RETRIES_EXHAUSTED",
            data={
                "attempts": transmission.attempts,
                "last_error": exc.error_class,
                "transmission": str(transmission.public_id),
            },
        )
        return SendResult(SendOutcome.HELD, document.pk, "RETRIES_EXHAUSTED")
    if count_attempt:
        delay = send_retry_delay(
            attempts=transmission.attempts,
            retry_after=getattr(exc, "retry_after", None),
        )
        transmission.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    else:
        # Refused before anything was sent (credentials): the halt holds it, not a
        # backoff, and the attempt does not count towards the limit.
        delay = 0.0
        transmission.attempts = max(transmission.attempts - 1, 0)
        transmission.next_attempt_at = None
    transmission.last_error_class = exc.error_class[:32]
    transmission.lease_expires_at = None  # released: back in ready
    transmission.save(
        update_fields=[
            "attempts",
            "next_attempt_at",
            "last_error_class",
            "lease_expires_at",
            "updated_at",
        ]
    )
    _transition(
        document,
        "retry_later",
        reason=exc.error_class,
        data={
            "attempts": transmission.attempts,
            "retry_in_seconds": round(delay, 1),
            "transmission": str(transmission.public_id),
        },
    )
    return SendResult(SendOutcome.RETRY, document.pk, exc.error_class)
