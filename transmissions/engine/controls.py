"""Outbound halts: the kill switch, token failures, the circuit breaker and surges.

Nothing is posted while an open halt covers a document's sending organisation
(or everyone). Every halt opened or closed is audited.

The circuit breaker counts retryable failures per destination (the sending
organisation's sends to one practice): past DOCFLOW_CIRCUIT_FAILURE_THRESHOLD
consecutive failures the circuit opens for that destination alone, so one flaky
practice never stops sends to the others. When DOCFLOW_CIRCUIT_ENDPOINT_DESTINATIONS
destinations have their circuit open at once, the fault is Connect's rather than a
practice's, and the circuit opens for the organisation's whole endpoint (a halt
with no destination). An open circuit lets sends through again at its ``retry_at``
(half-open): the clock queues a trial send then; the first success closes it and
queues what waited behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.actors import actor_for
from audit.services import audit_record
from docflow.models import Document, DocumentStatus, SendingOrganisation
from transmissions.models import (
    ConnectFailureCount,
    HaltKind,
    OutboundHalt,
    Transmission,
    TransmissionState,
)
from transmissions.queue import SEND, enqueue_on_commit


def _actor_label(actor: Any) -> str:
    return actor_for(actor).label or "system"


def _scope(halt: OutboundHalt) -> str:
    scope = halt.sending_organisation.ods_code if halt.sending_organisation else "all"
    if halt.destination_ods_code:
        scope = f"{scope}/{halt.destination_ods_code}"
    return scope


def open_halts_for(sending_organisation_id: int | None):
    """Open halts that cover one sending organisation (its own and global ones)."""
    scope = Q(sending_organisation__isnull=True)
    if sending_organisation_id is not None:
        scope |= Q(sending_organisation_id=sending_organisation_id)
    return OutboundHalt.objects.filter(scope, closed_at__isnull=True)


def outbound_halts_open(*, sending_organisation_id: int) -> list[OutboundHalt]:
    """The open halts covering one sending organisation, read once."""
    return list(
        open_halts_for(sending_organisation_id).select_related("sending_organisation")
    )


def halt_blocks(halt: OutboundHalt, *, destination_ods_code: str | None, now) -> bool:
    """Whether one open halt stops a send to ``destination_ods_code`` now (None: a
    send whose destination is not known here, stopped only by wider halts); a
    circuit past its retry time lets sends through (half-open)."""
    if halt.destination_ods_code and halt.destination_ods_code != destination_ods_code:
        return False
    half_open = halt.retry_at is not None and halt.retry_at <= now
    return not (halt.kind == HaltKind.CIRCUIT_OPEN and half_open)


def outbound_blocking_halt(
    *,
    sending_organisation_id: int,
    destination_ods_code: str | None = None,
    now=None,
    halts: list[OutboundHalt] | None = None,
) -> OutboundHalt | None:
    """The halt that stops a send to the destination now, if any: one of the
    organisation's (or everyone's), an open circuit for that destination, or a
    pause of the destination; an open circuit past its retry time lets sends
    through (half-open)."""
    now = now or timezone.now()
    if halts is None:
        halts = outbound_halts_open(sending_organisation_id=sending_organisation_id)
    # A pause of the destination is named only when nothing wider stops the send.
    for halt in sorted(halts, key=lambda h: h.kind == HaltKind.DESTINATION_PAUSE):
        if halt_blocks(halt, destination_ods_code=destination_ods_code, now=now):
            return halt
    return None


@transaction.atomic
def outbound_halt_open(
    *,
    kind: str,
    reason: str,
    sending_organisation: SendingOrganisation | None = None,
    destination_ods_code: str = "",
    retry_at=None,
    actor: Any = None,
) -> OutboundHalt:
    """Stop outbound for a scope (everyone, one organisation, or one organisation's
    sends to one destination); opening an open halt of the same kind is a no-op."""
    scope = {
        "sending_organisation": sending_organisation,
        "destination_ods_code": destination_ods_code,
        "kind": kind,
        "closed_at__isnull": True,
    }
    existing = OutboundHalt.objects.select_for_update().filter(**scope).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            halt = OutboundHalt.objects.create(
                sending_organisation=sending_organisation,
                destination_ods_code=destination_ods_code,
                kind=kind,
                reason=reason[:255],
                opened_by=_actor_label(actor)[:150],
                retry_at=retry_at,
            )
    except IntegrityError:
        # Another worker opened the same halt between our read and our insert.
        return OutboundHalt.objects.get(**scope)
    audit_record(
        action="outbound.halted",
        target_type="outbound",
        target_id=_scope(halt),
        data={
            "kind": kind,
            "reason": halt.reason,
            "destination": destination_ods_code or None,
            "retry_at": retry_at.isoformat() if retry_at else None,
        },
        actor=actor,
    )
    return halt


@transaction.atomic
def outbound_halt_close(
    *, halt: OutboundHalt, reason: str, actor: Any = None
) -> OutboundHalt:
    """Lift one halt; closing a closed halt is a no-op."""
    halt = OutboundHalt.objects.select_for_update().get(pk=halt.pk)
    if halt.closed_at is not None:
        return halt
    halt.closed_at = timezone.now()
    halt.closed_by = _actor_label(actor)[:150]
    halt.close_reason = reason[:255]
    halt.save(update_fields=["closed_at", "closed_by", "close_reason"])
    audit_record(
        action="outbound.resumed",
        target_type="outbound",
        target_id=_scope(halt),
        data={"kind": halt.kind, "reason": halt.close_reason},
        actor=actor,
    )
    return halt


@transaction.atomic
def destination_pause_open(
    *, destination_ods_code: str, reason: str, actor: Any = None
) -> OutboundHalt:
    """Pause every send to one destination (a halt with no sending organisation and
    the destination's code); pausing a paused destination is a no-op."""
    scope = {
        "sending_organisation": None,
        "destination_ods_code": destination_ods_code,
        "kind": HaltKind.DESTINATION_PAUSE,
        "closed_at__isnull": True,
    }
    existing = OutboundHalt.objects.select_for_update().filter(**scope).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            halt = OutboundHalt.objects.create(
                destination_ods_code=destination_ods_code,
                kind=HaltKind.DESTINATION_PAUSE,
                reason=reason[:255],
                opened_by=_actor_label(actor)[:150],
            )
    except IntegrityError:
        return OutboundHalt.objects.get(**scope)
    audit_record(
        action="destination.paused",
        target_type="organisation",
        target_id=destination_ods_code,
        data={"reason": halt.reason},
        actor=actor,
    )
    return halt


@transaction.atomic
def destination_pause_close(
    *, halt: OutboundHalt, reason: str, actor: Any = None
) -> OutboundHalt:
    """Resume sending to a paused destination; lifting a lifted pause is a no-op."""
    halt = OutboundHalt.objects.select_for_update().get(
        pk=halt.pk, kind=HaltKind.DESTINATION_PAUSE
    )
    if halt.closed_at is not None:
        return halt
    halt.closed_at = timezone.now()
    halt.closed_by = _actor_label(actor)[:150]
    halt.close_reason = reason[:255]
    halt.save(update_fields=["closed_at", "closed_by", "close_reason"])
    audit_record(
        action="destination.resumed",
        target_type="organisation",
        target_id=halt.destination_ods_code,
        data={"reason": halt.close_reason},
        actor=actor,
    )
    return halt


def destination_pauses_open():
    """The open destination pauses (each a halt of every send to one destination)."""
    return OutboundHalt.objects.filter(
        kind=HaltKind.DESTINATION_PAUSE,
        sending_organisation__isnull=True,
        closed_at__isnull=True,
    )


def outbound_pause(
    *,
    reason: str,
    actor: Any,
    sending_organisation: SendingOrganisation | None = None,
) -> OutboundHalt:
    """The operator kill switch: stop all outbound (or one organisation's)."""
    return outbound_halt_open(
        kind=HaltKind.KILL_SWITCH,
        reason=reason,
        sending_organisation=sending_organisation,
        actor=actor,
    )


@transaction.atomic
def outbound_resume(
    *,
    reason: str,
    actor: Any,
    sending_organisation: SendingOrganisation | None = None,
    kinds: tuple[str, ...] = tuple(HaltKind.values),
) -> list[OutboundHalt]:
    """Lift the open halts of one scope (default: every kind); returns those closed."""
    halts = OutboundHalt.objects.filter(
        sending_organisation=sending_organisation,
        kind__in=kinds,
        closed_at__isnull=True,
    )
    closed = [
        outbound_halt_close(halt=halt, reason=reason, actor=actor) for halt in halts
    ]
    if sending_organisation is not None and HaltKind.CIRCUIT_OPEN in kinds:
        ConnectFailureCount.objects.filter(
            sending_organisation=sending_organisation
        ).update(consecutive=0)
    return closed


ENDPOINT = ""  # a failure count or circuit for no one destination: the endpoint
# A destination that failed this recently is still taken for failing (its sends go
# alone, never in a batch with others'), though a success came since.
FAILING_WINDOW_SECONDS = 600


def _circuit_extend_or_open(
    *,
    sending_organisation: SendingOrganisation,
    destination_ods_code: str,
    reason: str,
) -> OutboundHalt:
    """Open the circuit for the scope, or (after a failed trial) keep it open for
    another cool-down from now."""
    retry_at = timezone.now() + timedelta(
        seconds=settings.DOCFLOW_CIRCUIT_COOLDOWN_SECONDS
    )
    halt = (
        OutboundHalt.objects.select_for_update()
        .filter(
            sending_organisation=sending_organisation,
            destination_ods_code=destination_ods_code,
            kind=HaltKind.CIRCUIT_OPEN,
            closed_at__isnull=True,
        )
        .first()
    )
    if halt is not None:
        halt.retry_at = retry_at
        halt.save(update_fields=["retry_at"])
        return halt
    return outbound_halt_open(
        kind=HaltKind.CIRCUIT_OPEN,
        reason=reason,
        sending_organisation=sending_organisation,
        destination_ods_code=destination_ods_code,
        retry_at=retry_at,
    )


@transaction.atomic
def connect_failure_record(
    *,
    sending_organisation: SendingOrganisation,
    error: str,
    destination_ods_code: str = ENDPOINT,
) -> OutboundHalt | None:
    """Count a retryable failure sending to one destination; past the threshold
    that destination's circuit opens (or, after a failed trial send, stays open for
    another cool-down), and when enough destinations have theirs open at once, the
    whole endpoint's does. Failures no destination is named for count against the
    endpoint. Returns the circuit opened or kept open, if any."""
    counter, _ = ConnectFailureCount.objects.select_for_update().get_or_create(
        sending_organisation=sending_organisation,
        destination_ods_code=destination_ods_code,
    )
    counter.consecutive += 1
    counter.save(update_fields=["consecutive", "updated_at"])
    circuits = OutboundHalt.objects.filter(
        sending_organisation=sending_organisation,
        kind=HaltKind.CIRCUIT_OPEN,
        closed_at__isnull=True,
    )
    endpoint_open = circuits.filter(destination_ods_code=ENDPOINT).exists()
    if counter.consecutive < settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD:
        if not endpoint_open:
            return None
        # A failure while the endpoint's circuit is open (its trial): still down.
        return _circuit_extend_or_open(
            sending_organisation=sending_organisation,
            destination_ods_code=ENDPOINT,
            reason=f"Failures go on talking to Connect (last: {error[:120]})",
        )
    where = f" to {destination_ods_code}" if destination_ods_code else ""
    halt = _circuit_extend_or_open(
        sending_organisation=sending_organisation,
        destination_ods_code=destination_ods_code,
        reason=(
            f"{counter.consecutive} consecutive failures talking to Connect{where} "
            f"(last: {error[:120]})"
        ),
    )
    if destination_ods_code == ENDPOINT:
        return halt
    failing = circuits.exclude(destination_ods_code=ENDPOINT).count()
    if endpoint_open or failing >= settings.DOCFLOW_CIRCUIT_ENDPOINT_DESTINATIONS:
        return _circuit_extend_or_open(
            sending_organisation=sending_organisation,
            destination_ods_code=ENDPOINT,
            reason=(
                f"{failing} destinations failing at once: Connect itself "
                f"(last: {error[:120]})"
            ),
        )
    return halt


def connect_success_record(
    *,
    sending_organisation_id: int,
    destination_ods_codes: Sequence[str] = (),
    circuit_open: bool = True,
    failures_counted: bool = True,
) -> None:
    """A success resets the failure counts of the destinations it reached (and the
    endpoint's) and closes their open circuits and the endpoint's (the trial
    passed), queueing the documents that waited behind them; ``circuit_open=False``
    says the caller saw none open before its request, ``failures_counted=False``
    that it saw no failure counted for them."""
    counted = [ENDPOINT, *destination_ods_codes]
    if failures_counted:
        ConnectFailureCount.objects.filter(
            sending_organisation_id=sending_organisation_id,
            destination_ods_code__in=counted,
            consecutive__gt=0,
        ).update(consecutive=0)
    if not circuit_open:
        return
    for halt in OutboundHalt.objects.filter(
        sending_organisation_id=sending_organisation_id,
        destination_ods_code__in=counted,
        kind=HaltKind.CIRCUIT_OPEN,
        closed_at__isnull=True,
    ):
        outbound_halt_close(halt=halt, reason="A trial send succeeded.")
        circuit_waiting_queue(halt=halt)


def destinations_failing(
    *, sending_organisation_id: int, halts: list[OutboundHalt]
) -> set[str]:
    """The destinations one organisation's sends are failing to now: a failure
    counted since the last success or within FAILING_WINDOW_SECONDS (a flaky
    practice succeeds now and then), or a circuit open (``halts``: the
    organisation's open halts); ``ENDPOINT`` among them when failures are counted
    against the endpoint."""
    recently = timezone.now() - timedelta(seconds=FAILING_WINDOW_SECONDS)
    failing = set(
        ConnectFailureCount.objects.filter(
            Q(consecutive__gt=0) | Q(updated_at__gte=recently),
            sending_organisation_id=sending_organisation_id,
        ).values_list("destination_ods_code", flat=True)
    )
    return failing | {
        halt.destination_ods_code
        for halt in halts
        if halt.kind == HaltKind.CIRCUIT_OPEN and halt.destination_ods_code
    }


def circuit_waiting_documents(*, halt: OutboundHalt, limit: int):
    """Ids of the ready documents a circuit holds back that are due now (not a
    split parent, not backing off), oldest first."""
    backing_off = Transmission.objects.filter(
        document=OuterRef("pk"),
        state=TransmissionState.PENDING,
        next_attempt_at__gt=timezone.now(),
    )
    waiting = Document.objects.filter(
        status=DocumentStatus.READY,
        sending_organisation_id=halt.sending_organisation_id,
    )
    if halt.destination_ods_code:
        waiting = waiting.filter(destination_ods_code=halt.destination_ods_code)
    return list(
        waiting.exclude(part_count__isnull=False, part_number__isnull=True)
        .exclude(Exists(backing_off))
        .order_by("status_changed_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def circuit_waiting_queue(*, halt: OutboundHalt, limit: int = 1000) -> int:
    """Queue (after commit) the sends a circuit that just closed held back, so they
    go now rather than at the next sweep; returns how many."""
    waiting = circuit_waiting_documents(halt=halt, limit=limit)
    for document_id in waiting:
        enqueue_on_commit(SEND, document_id)
    return len(waiting)


def surge_check(*, sending_organisation: SendingOrganisation) -> OutboundHalt | None:
    """Too many system errors / on-hold statuses in the window halts outbound for the
    organisation until an operator has looked (one halt, not one per document)."""
    since = timezone.now() - timedelta(seconds=settings.DOCFLOW_SURGE_WINDOW_SECONDS)
    count = Transmission.objects.filter(
        sending_organisation=sending_organisation,
        status_code__in=(5000, 7000),
        last_status_at__gte=since,
    ).count()
    if count < settings.DOCFLOW_SURGE_THRESHOLD:
        return None
    return outbound_halt_open(
        kind=HaltKind.SURGE,
        reason=(
            f"{count} system errors or on-hold statuses in the last "
            f"{settings.DOCFLOW_SURGE_WINDOW_SECONDS // 60} minutes"
        ),
        sending_organisation=sending_organisation,
    )
