"""Sending over MESH: find the recipient's mailbox, claim, upload once, record.

The upload is never repeated blindly: a failure before any bytes left goes back to
``ready`` with backoff; a failure after (a timeout, a lost answer) makes the
outcome unknown, settled by tracking the message's local id (the transmission's
idempotency key: the document's public id and the send's number, no patient
identifier). A retry reuses the pending transmission, its local id and its bytes.
Where a retry is queued (the clock when it is due, the pipeline sweep as the
backstop): ``pipeline.sending``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from docflow.models import Channel, Document, DocumentType, PayloadVersion
from docflow.payloads.store import payload_blob_read
from transmissions.channels.mesh.client import MeshMailboxClient
from transmissions.channels.mesh.conformance.send_document import (
    SendDocumentInput,
    SendDocumentRefused,
    send_document_message,
)
from transmissions.channels.mesh.conformance.validation import (
    SendDocumentInvalid,
    send_document_validate,
)
from transmissions.channels.mesh.connections import mesh_client_for, mesh_setting
from transmissions.channels.mesh.errors import (
    MeshAuthFailed,
    MeshChannelError,
    MeshConfigurationError,
    MeshOutcomeUnknown,
    MeshRefused,
)
from transmissions.channels.mesh.halts import mesh_credentials_halt
from transmissions.channels.mesh.outcomes import mesh_transmission_record_posted
from transmissions.channels.mesh.routing import MeshRoute
from transmissions.engine.claims import document_claim
from transmissions.engine.leases import claims_kept
from transmissions.engine.moves import document_move
from transmissions.engine.outcomes import (
    send_failed,
    send_hold_before,
    send_outcome_unknown,
    send_refused_hold,
)
from transmissions.engine.send_rules import SendOutcome, SendResult
from transmissions.models import (
    HaltKind,
    MeshEndpointLookup,
    MeshMailbox,
    Transmission,
    TransmissionState,
)

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "MESH-NOT-CONFIGURED"
NO_MAILBOX = "MESH-NO-MAILBOX"
FHIR_JSON = "application/fhir+json"
MESSAGE_INVALID = "MESH-MESSAGE-INVALID"


def mesh_recipient_resolve(
    *, client: MeshMailboxClient, ods_code: str, workflow_id: str
) -> str | None:
    """The mailbox that receives ``workflow_id`` for ``ods_code``, from MESH's
    directory, remembered for DOCFLOW_MESH_LOOKUP_TTL_SECONDS (default a day)."""
    ttl = timedelta(seconds=int(mesh_setting("LOOKUP_TTL_SECONDS", 86400)))
    now = timezone.now()
    known = MeshEndpointLookup.objects.filter(
        ods_code=ods_code, workflow_id=workflow_id, looked_up_at__gt=now - ttl
    ).first()
    if known is not None and known.mailbox_id:
        return known.mailbox_id
    endpoints = client.lookup(ods_code=ods_code, workflow_id=workflow_id)
    # A practice normally has one mailbox; with several, MESH lists the receiving
    # one first.
    mailbox_id = endpoints[0].mailbox_id.upper() if endpoints else ""
    MeshEndpointLookup.objects.update_or_create(
        ods_code=ods_code,
        workflow_id=workflow_id,
        defaults={"mailbox_id": mailbox_id, "looked_up_at": now},
    )
    return mailbox_id or None


def mesh_local_id(document: Document) -> str:
    """``<document public id>.<n>`` for the document's n-th MESH send: unique per
    message (MESH tracks by it), and free of patient identifiers."""
    sends = Transmission.objects.filter(
        document_id=document.pk, channel=Channel.MESH
    ).count()
    return f"{document.public_id}.{sends + 1}"


def document_version_number(document: Document) -> int:
    """1 for a first document, one more for each corrected version before it."""
    version, current = 1, document
    while current.replaces_id is not None and version < 100:
        version += 1
        current = Document.objects.only("replaces_id").get(pk=current.replaces_id)
    return version


def mesh_message(
    document: Document, transmission: Transmission, payload: PayloadVersion, mailbox
) -> bytes:
    """The GP Connect Send Document message, validated against the profiles it
    claims before it may leave (``SendDocumentInvalid`` otherwise)."""
    content = payload_blob_read(
        storage_name=payload.storage_name, expected_sha256=payload.sha256
    )
    destination = document.destination
    replaces = document.replaces
    message = send_document_message(
        SendDocumentInput(
            message_id=str(transmission.public_id),
            sender_mailbox=mailbox.mailbox_id,
            sender_ods_code=document.sending_organisation.ods_code,
            sender_name=document.sending_organisation.name,
            recipient_ods_code=document.destination_ods_code,
            recipient_name=destination.name if destination is not None else "",
            document_id=str(document.public_id),
            document_version=document_version_number(document),
            replaces_document_id=str(replaces.public_id) if replaces else None,
            source_system=document.source_system,
            document_type=document.document_type,
            description=document.description,
            event_date=document.event_date,
            author_name=document.sender_person,
            department=document.sender_department,
            inpatient=document.inpatient,
            nhs_number=document.nhs_number,
            family_name=document.patient_family_name,
            given_names=document.patient_given_names,
            birth_date=document.patient_birth_date,
            gender=document.patient_gender,
            mrn=document.mrn,
            payload_id=str(payload.public_id),
            media_type=payload.media_type,
            content=content,
        )
    )
    return send_document_validate(message)


def _hold_invalid(
    document: Document, transmission: Transmission, exc: Exception
) -> SendResult:
    """A message that fails its own checks never leaves: the document is held
    with the problems named (element paths, never values)."""
    problems = getattr(exc, "problems", [str(exc)])
    logger.error(
        "Send Document message for %s not sent: %s",
        transmission.public_id,
        "; ".join(problems[:5]),
    )
    with transaction.atomic():
        transmission.last_error_class = type(exc).__name__[:32]
        transmission.state = TransmissionState.ABANDONED
        transmission.save(update_fields=["last_error_class", "state", "updated_at"])
        document_move(
            document=document,
            transition="hold_after_send_attempt",
            reason=MESSAGE_INVALID,
            data={
                "codes": [MESSAGE_INVALID],
                "problems": problems[:20],
                "transmission": str(transmission.public_id),
                "channel": "mesh",
            },
        )
    return SendResult(SendOutcome.HELD, document.pk, MESSAGE_INVALID)


def mesh_document_send(
    *, document: Document, route: MeshRoute, actor: Any = None
) -> SendResult:
    """Upload one ready document to the practice's MESH mailbox at most once per
    claim and record the answer: posted, retry later, held, or outcome unknown."""
    mailbox: MeshMailbox | None = route.mailbox
    destination = document.destination_ods_code
    if mailbox is None:
        return send_hold_before(
            document=document,
            reason=NOT_CONFIGURED,
            data={"route": route.reason, "channel": "mesh"},
        )
    workflow_id = mailbox.workflow_for(document.document_type)
    try:
        client = mesh_client_for(mailbox)
    except MeshConfigurationError as exc:
        logger.error("MESH mailbox %s unusable: %s", mailbox.mailbox_id, exc)
        return send_hold_before(
            document=document,
            reason=NOT_CONFIGURED,
            data={"route": route.reason, "channel": "mesh"},
        )
    with client:
        pending = Transmission.objects.filter(
            document_id=document.pk, state=TransmissionState.PENDING
        ).first()
        try:
            recipient = (
                pending.recipient_mailbox
                if pending is not None and pending.recipient_mailbox
                else mesh_recipient_resolve(
                    client=client, ods_code=destination, workflow_id=workflow_id
                )
            )
        except MeshAuthFailed as exc:
            # Nothing claimed: the document stays ready behind the halt.
            mesh_credentials_halt(mailbox=mailbox, error=exc)
            return SendResult(SendOutcome.HALTED, document.pk, HaltKind.TOKEN_FAILURE)
        except MeshChannelError as exc:
            # Nothing claimed: the document stays ready and is dispatched again.
            logger.warning("MESH lookup failed (%s)", exc.error_class)
            return SendResult(SendOutcome.RETRY, document.pk, "mesh lookup failed")
        if recipient is None:
            return send_hold_before(
                document=document,
                reason=NO_MAILBOX,
                data={"destination": destination, "workflow": workflow_id},
            )
        claimed = document_claim(
            document.pk,
            channel=Channel.MESH,
            new_key=mesh_local_id(document),
            fields={
                "route_reason": route.reason,
                "workflow_id": workflow_id,
                "recipient_mailbox": recipient,
            },
        )
        if isinstance(claimed, str):
            return SendResult(claimed, document.pk)
        claimed_document, transmission, payload = claimed
        claimed_document.sending_organisation = document.sending_organisation
        try:
            # The claim is this worker's while it uploads (the lease renewed by a
            # heartbeat); a worker that dies here leaves a lease that expires, and
            # the claim goes to outcome unknown, settled by the message's local id.
            content = mesh_message(claimed_document, transmission, payload, mailbox)
        except (SendDocumentInvalid, SendDocumentRefused) as exc:
            return _hold_invalid(claimed_document, transmission, exc)
        try:
            with claims_kept([transmission.pk]):
                message_id = client.send(
                    recipient=transmission.recipient_mailbox or recipient,
                    content=content,
                    workflow_id=transmission.workflow_id or workflow_id,
                    local_id=transmission.idempotency_key,
                    filename=f"{claimed_document.public_id}.json",
                    subject=DocumentType(claimed_document.document_type).label,
                    content_type=FHIR_JSON,
                    checksum=f"SHA256:{hashlib.sha256(content).hexdigest()}",
                )
        except MeshAuthFailed as exc:
            # Refused before anything was accepted: one halt for the organisation,
            # the attempt does not count, and the document waits in ready (no
            # hold, no work item), exactly as when Connect refuses a token.
            mesh_credentials_halt(mailbox=mailbox, error=exc)
            send_failed(claimed_document, transmission, exc, count_attempt=False)
            return SendResult(SendOutcome.HALTED, document.pk, HaltKind.TOKEN_FAILURE)
        except MeshOutcomeUnknown as exc:
            return send_outcome_unknown(claimed_document, transmission, exc)
        except MeshRefused as exc:
            code = f"MESH-{exc.code}" if exc.code else "MESH-REFUSED"
            return send_refused_hold(
                document=claimed_document,
                transmission=transmission,
                error=exc,
                codes=[code],
                data={"channel": "mesh"},
            )
        except (MeshConfigurationError, MeshChannelError) as exc:
            # Nothing was accepted (unusable TLS files, no connection, 429).
            return send_failed(claimed_document, transmission, exc)
    mesh_transmission_record_posted(
        transmission_id=transmission.pk, message_id=message_id, actor=actor
    )
    return SendResult(SendOutcome.POSTED, document.pk, message_id)
