"""Settling Connect sends by idempotency key, never by a blind resend.

An ``outcome_unknown`` document is settled by asking Connect for its key
(``connect_outcome_unknown_settle``); a claim whose lease expired (its worker
died, see ``engine.leases``) is settled the same way at once
(``connect_claim_settle``). Found: recorded as posted. Absent: back to ``ready``
and sent again under the same key. The channel-neutral steps (the stuck-sending
backstop, an expired claim that cannot be asked about) are ``engine.settling``'s;
the pipeline dispatches to each channel's settling (``pipeline.settling``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from docflow.models import Document, DocumentStatus, SendingOrganisation
from docflow.services import TransitionRefused
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
)
from transmissions.channels.connect.tracking.statuses import transmission_record_posted
from transmissions.engine.moves import document_move
from transmissions.engine.outcomes import credentials_halt
from transmissions.engine.settling import (
    Settled,
    claim_expired,
    claim_mark_unknown,
)
from transmissions.models import Transmission, TransmissionState
from transmissions.queue import SEND, enqueue_on_commit

logger = logging.getLogger(__name__)
S = DocumentStatus


def connect_outcome_unknown_settle(*, document_id: int, actor: Any = None) -> str:
    """Ask Connect whether it holds our idempotency key: found -> tracked as received;
    absent -> back to ``ready`` to be sent again under the same key."""
    document = Document.objects.select_related("sending_organisation").get(
        pk=document_id
    )
    if document.status != S.OUTCOME_UNKNOWN:
        return Settled.NOT_UNKNOWN
    transmission = Transmission.objects.filter(
        document=document, state=TransmissionState.PENDING
    ).first()
    if transmission is None:
        # Recorded as posted already (e.g. by the changes feed): apply its status.
        transmission = (
            Transmission.objects.filter(document=document)
            .exclude(state=TransmissionState.ABANDONED)
            .order_by("-created_at", "-id")
            .first()
        )
        if transmission is None or not transmission.external_id:
            logger.error("Document %s is unknown without a transmission", document.pk)
            return Settled.FAILED
    try:
        found = _held_at_connect(transmission, document.sending_organisation)
    except _Unanswered:
        return Settled.FAILED  # try again on the next round
    if found is not None:
        transmission_record_posted(
            transmission_id=transmission.pk, status=found, actor=actor
        )
        return Settled.FOUND
    with transaction.atomic():
        try:
            document_move(
                document=Document(pk=document_id),
                transition="mark_proved_absent",
                reason="NOT_AT_CONNECT",
                data={
                    "transmission": str(transmission.public_id),
                    "idempotency_key": transmission.idempotency_key,
                },
                actor=actor,
            )
        except TransitionRefused:
            return Settled.NOT_UNKNOWN
        Transmission.objects.filter(pk=transmission.pk).update(
            next_attempt_at=timezone.now(), send_queued_at=timezone.now()
        )
        enqueue_on_commit(SEND, document_id)
    return Settled.ABSENT


def connect_claim_settle(*, document_id: int, actor: Any = None) -> str:
    """Settle a claim whose lease expired (its worker is dead) by its idempotency
    key, at once: Connect has it -> recorded as posted (received); Connect has
    not -> back to ``ready`` and sent again under the same key; Connect cannot be
    asked -> ``outcome_unknown``, settled as any other. A claim whose lease was
    renewed meanwhile is its worker's: left alone."""
    transmission = (
        Transmission.objects.select_related("document__sending_organisation")
        .filter(document_id=document_id, state=TransmissionState.PENDING)
        .first()
    )
    if not claim_expired(transmission):
        return Settled.LIVE
    document = transmission.document
    try:
        found = _held_at_connect(transmission, document.sending_organisation)
    except _Unanswered:
        return claim_mark_unknown(
            document_id=document_id, transmission=transmission, actor=actor
        )
    if found is not None:
        # Posted and never recorded: record it now (a no-op if the changes feed or
        # a late worker recorded it first).
        transmission_record_posted(
            transmission_id=transmission.pk, status=found, actor=actor
        )
        return Settled.FOUND
    with transaction.atomic():
        locked = (
            Transmission.objects.select_for_update()
            .select_related("document")
            .filter(pk=transmission.pk, state=TransmissionState.PENDING)
            .first()
        )
        if not claim_expired(locked):
            return Settled.LIVE
        try:
            document_move(
                document=Document(pk=document_id),
                transition="retry_later",
                reason="CLAIM_RELEASED",
                data={
                    "transmission": str(transmission.public_id),
                    "idempotency_key": transmission.idempotency_key,
                    "found_by": "lease expired, not at Connect",
                },
                actor=actor,
            )
        except TransitionRefused:
            return Settled.LIVE
        now = timezone.now()
        # Nothing reached Connect: the claim does not count as an attempt.
        Transmission.objects.filter(pk=transmission.pk).update(
            attempts=max(locked.attempts - 1, 0),
            lease_expires_at=None,
            next_attempt_at=now,
            send_queued_at=now,
        )
        enqueue_on_commit(SEND, document_id)
    return Settled.ABSENT


class _Unanswered(Exception):
    """Connect could not be asked now (it refused our credentials, or failed)."""


def _held_at_connect(transmission: Transmission, organisation: SendingOrganisation):
    """What Connect holds under the transmission's idempotency key (None: nothing).
    Raises ``_Unanswered`` when it cannot say now; refused credentials also halt
    the organisation."""
    client = connect_client_for(organisation)
    try:
        return client.find_by_idempotency_key(transmission.idempotency_key)
    except (ConnectAuthFailed, ConnectConfigurationError) as exc:
        credentials_halt(sending_organisation=organisation, error=exc)
        raise _Unanswered from exc
    except ConnectError as exc:
        raise _Unanswered from exc
