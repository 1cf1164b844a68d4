"""Claiming a ready document for one send, whatever the channel.

A claim moves ``ready`` -> ``sending`` under the document's row lock and readies
its transmission: a first attempt gets a new transmission with a new key (Connect:
the idempotency key; MESH: the message's local id) that every retry reuses, so
the channel keeps at most one copy whatever happens between our request and our
commit. A claim holds a lease its worker renews while it posts (``leases``).
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from docflow.models import Channel, Document, DocumentStatus, PayloadVersion
from docflow.selectors import document_current_payload
from docflow.services import document_transition
from transmissions.engine.leases import lease_expiry
from transmissions.engine.send_rules import SendOutcome
from transmissions.models import Transmission, TransmissionState

Claimed = tuple[Document, Transmission, PayloadVersion]


def transmission_first(
    *,
    document_id: int,
    payload: PayloadVersion | None,
    sending_organisation_id: int,
    destination_ods_code: str,
    document_type: str,
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
        document_type=document_type,
        idempotency_key=key or f"docflow-{uuid.uuid4()}",
        attempts=1,
        **(fields or {}),
    )


@transaction.atomic
def document_claim(
    document_id: int,
    *,
    channel: str = Channel.CONNECT,
    new_key: str | None = None,
    fields: dict[str, str] | None = None,
) -> Claimed | str:
    """Claim ``ready`` -> ``sending`` under a row lock and ready its transmission
    (a retry not yet due is ``not_due``; a document no longer ready, ``not_ready``).

    A new transmission goes by ``channel`` under ``new_key`` (MESH: the local id)
    with ``fields``; a route a rule chose (``route_reason``) is audited with it.

    The document is locked and checked first and the transmission written before
    the claim's audit event: that event holds the audit chain until commit, so the
    less that follows it, the less every other writer waits.
    """
    ready = (
        Document.objects.select_for_update()
        .filter(pk=document_id, status=DocumentStatus.READY)
        .values_list("sending_organisation_id", "destination_ods_code", "document_type")
        .first()
    )
    if ready is None:
        return SendOutcome.NOT_READY
    sending_organisation_id, destination_ods_code, document_type = ready
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
        transmission = transmission_first(
            document_id=document_id,
            payload=payload,
            sending_organisation_id=sending_organisation_id,
            destination_ods_code=destination_ods_code,
            document_type=document_type,
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
    # Not ``document_move``: a claim never calls for a work item (``sending``
    # needs no one's attention), so the work item rule is not asked.
    document = document_transition(
        document=Document(pk=document_id), transition="claim_for_sending"
    )
    transmission.document = document
    return document, transmission, payload
