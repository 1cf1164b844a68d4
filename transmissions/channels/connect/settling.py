"""Reconciliation: settle uncertain sends by idempotency key, never by a blind resend,
and re-check destinations so an inactive practice holds its waiting documents.

A claim whose lease expired (its worker died, see ``leases``) is settled at once by
its key (``sending_claim_settle``); a document in ``sending`` past
DOCFLOW_SENDING_TIMEOUT_SECONDS is only the last backstop (a claim without a lease:
MESH, or rows from before leases)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from casework.services import work_item_sync_for_document
from docflow.directory import organisation_record_lookup
from docflow.models import (
    Channel,
    DestinationProfile,
    Document,
    DocumentStatus,
    Organisation,
    SendingOrganisation,
)
from docflow.services import TransitionRefused, document_transition
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
)
from transmissions.channels.connect.tracking.statuses import transmission_record_posted
from transmissions.engine.controls import outbound_halt_open
from transmissions.models import HaltKind, Transmission, TransmissionState
from transmissions.queue import SEND, SETTLE, enqueue_on_commit

logger = logging.getLogger(__name__)
S = DocumentStatus


class Settled:
    FOUND = "found"
    ABSENT = "absent"
    NOT_UNKNOWN = "not_unknown"
    FAILED = "failed"
    # Expired claims only: still its worker's (renewed meanwhile, or settled), or
    # left unknown because Connect could not be asked.
    LIVE = "live"
    UNKNOWN = "unknown"


def _transition(document, transition, *, reason="", data=None, actor=None):
    document = document_transition(
        document=document, transition=transition, reason=reason, data=data, actor=actor
    )
    work_item_sync_for_document(document=document, actor=actor)
    return document


def sending_stuck_mark_unknown(*, actor: Any = None) -> list[int]:
    """A document in ``sending`` longer than any POST can take was left by a worker that
    died: its outcome is unknown until the idempotency key settles it."""
    timeout = timedelta(seconds=settings.DOCFLOW_SENDING_TIMEOUT_SECONDS)
    cutoff = timezone.now() - timeout
    moved = []
    for document_id in Document.objects.filter(
        status=S.SENDING, status_changed_at__lt=cutoff
    ).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            try:
                _transition(
                    Document(pk=document_id),
                    "mark_outcome_unknown",
                    reason="STUCK_SENDING",
                    actor=actor,
                )
            except TransitionRefused:
                continue  # its worker finished after all
        moved.append(document_id)
    return moved


def outcome_unknown_settle(*, document_id: int, actor: Any = None) -> str:
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
            _transition(
                Document(pk=document_id),
                "mark_proved_absent",
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


def sending_claim_settle(*, document_id: int, actor: Any = None) -> str:
    """Settle a claim whose lease expired (its worker is dead) by its idempotency
    key, at once: Connect has it -> recorded as posted (received); Connect has
    not -> back to ``ready`` and sent again under the same key; Connect cannot be
    asked -> ``outcome_unknown``, settled as any other. MESH claims (no key to ask
    Connect about) go to ``outcome_unknown`` and are settled by their local id. A
    claim whose lease was renewed meanwhile is its worker's: left alone."""
    transmission = (
        Transmission.objects.select_related("document__sending_organisation")
        .filter(document_id=document_id, state=TransmissionState.PENDING)
        .first()
    )
    if not _claim_expired(transmission):
        return Settled.LIVE
    document = transmission.document
    if transmission.channel != Channel.CONNECT:
        return _claim_unknown(document_id, transmission, actor)
    try:
        found = _held_at_connect(transmission, document.sending_organisation)
    except _Unanswered:
        return _claim_unknown(document_id, transmission, actor)
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
        if not _claim_expired(locked):
            return Settled.LIVE
        try:
            _transition(
                Document(pk=document_id),
                "retry_later",
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
        outbound_halt_open(
            kind=HaltKind.TOKEN_FAILURE,
            reason=str(exc)[:255],
            sending_organisation=organisation,
        )
        raise _Unanswered from exc
    except ConnectError as exc:
        raise _Unanswered from exc


def _claim_expired(transmission: Transmission | None) -> bool:
    return (
        transmission is not None
        and transmission.document.status == S.SENDING
        and transmission.lease_expires_at is not None
        and transmission.lease_expires_at <= timezone.now()
    )


def _claim_unknown(document_id: int, transmission: Transmission, actor: Any) -> str:
    with transaction.atomic():
        try:
            _transition(
                Document(pk=document_id),
                "mark_outcome_unknown",
                reason="CLAIM_EXPIRED",
                data={"transmission": str(transmission.public_id)},
                actor=actor,
            )
        except TransitionRefused:
            return Settled.LIVE
        enqueue_on_commit(SETTLE, document_id)
    return Settled.UNKNOWN


@dataclass(frozen=True)
class DirectoryCheck:
    checked: int
    inactive: int
    held: int


def organisations_reconcile(
    *, stale_after_seconds: int = 86400, limit: int = 200, actor: Any = None
) -> DirectoryCheck:
    """Re-check destinations that documents are waiting for, and stale entries; a
    destination that turned inactive holds its ready documents (one work item each)."""
    stale = timezone.now() - timedelta(seconds=stale_after_seconds)
    checked = inactive = held = 0
    # Practices reached over MESH are not in Connect's directory: asking Connect
    # about them would mark them inactive and hold their documents.
    mesh_types = DestinationProfile.objects.filter(channel=Channel.MESH).values(
        "endpoint_type"
    )
    over_mesh = set(
        Organisation.objects.filter(endpoint_type__in=mesh_types).values_list(
            "ods_code", flat=True
        )
    )
    for organisation in SendingOrganisation.objects.filter(is_active=True).exclude(
        connect_client_id=""
    ):
        waiting = set(
            Document.objects.filter(
                sending_organisation=organisation, status__in=(S.READY, S.SUBMITTED)
            )
            .values_list("destination_ods_code", flat=True)
            .distinct()[:limit]
        )
        codes = waiting | set(
            Organisation.objects.filter(
                Q(last_verified_at__lt=stale) | Q(last_verified_at__isnull=True)
            ).values_list("ods_code", flat=True)[:limit]
        )
        client = connect_client_for(organisation)
        for ods_code in sorted(codes - over_mesh):
            try:
                found = client.organisation(ods_code)
            except (ConnectAuthFailed, ConnectConfigurationError) as exc:
                outbound_halt_open(
                    kind=HaltKind.TOKEN_FAILURE,
                    reason=str(exc)[:255],
                    sending_organisation=organisation,
                )
                break
            except ConnectError:
                break
            checked += 1
            record = organisation_record_lookup(
                ods_code=ods_code,
                found=found is not None,
                is_active=bool(found and found.is_active),
                is_receiving=bool(found and found.is_receiving),
                endpoint_type=found.endpoint_type if found else "",
                name=found.name if found else "",
                actor=actor,
            )
            if record.is_active:
                continue
            inactive += 1
            code = "DC03" if found and found.is_active else "DC02"
            held += _hold_ready_for(organisation, ods_code, code, actor)
        codes.clear()
    return DirectoryCheck(checked=checked, inactive=inactive, held=held)


def _hold_ready_for(
    organisation: SendingOrganisation, ods_code: str, code: str, actor: Any
) -> int:
    held = 0
    for document_id in Document.objects.filter(
        sending_organisation=organisation,
        destination_ods_code=ods_code,
        status=S.READY,
    ).values_list("pk", flat=True):
        with transaction.atomic():
            try:
                _transition(
                    Document(pk=document_id),
                    "hold_before_send",
                    reason=code,
                    data={"destination": ods_code, "found_by": "reconciliation"},
                    actor=actor,
                )
            except TransitionRefused:
                continue
        held += 1
    return held
