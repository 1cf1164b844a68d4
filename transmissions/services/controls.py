"""Outbound halts: the kill switch, token failures, the circuit breaker and surges.

Nothing is posted while an open halt covers a document's sending organisation
(or everyone). Every halt opened or closed is audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actors import actor_for
from audit.services import audit_record
from docflow.models import SendingOrganisation
from transmissions.models import (
    ConnectFailureCount,
    HaltKind,
    OutboundHalt,
    Transmission,
)


def _actor_label(actor: Any) -> str:
    return actor_for(actor).label or "system"


def _scope(halt: OutboundHalt) -> str:
    return halt.sending_organisation.ods_code if halt.sending_organisation else "all"


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


def outbound_blocking_halt(
    *,
    sending_organisation_id: int,
    now=None,
    halts: list[OutboundHalt] | None = None,
) -> OutboundHalt | None:
    """The halt that stops a send now, if any; an open circuit past its retry time lets
    one trial send through (half-open)."""
    now = now or timezone.now()
    if halts is None:
        halts = outbound_halts_open(sending_organisation_id=sending_organisation_id)
    for halt in halts:
        half_open = halt.retry_at is not None and halt.retry_at <= now
        if halt.kind == HaltKind.CIRCUIT_OPEN and half_open:
            continue
        return halt
    return None


@transaction.atomic
def outbound_halt_open(
    *,
    kind: str,
    reason: str,
    sending_organisation: SendingOrganisation | None = None,
    retry_at=None,
    actor: Any = None,
) -> OutboundHalt:
    """Stop outbound for a scope; opening an open halt of the same kind is a no-op."""
    existing = (
        OutboundHalt.objects.select_for_update()
        .filter(
            sending_organisation=sending_organisation, kind=kind, closed_at__isnull=True
        )
        .first()
    )
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            halt = OutboundHalt.objects.create(
                sending_organisation=sending_organisation,
                kind=kind,
                reason=reason[:255],
                opened_by=_actor_label(actor)[:150],
                retry_at=retry_at,
            )
    except IntegrityError:
        # Another worker opened the same halt between our read and our insert.
        return OutboundHalt.objects.get(
            sending_organisation=sending_organisation, kind=kind, closed_at__isnull=True
        )
    audit_record(
        action="outbound.halted",
        target_type="outbound",
        target_id=_scope(halt),
        data={
            "kind": kind,
            "reason": halt.reason,
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


@transaction.atomic
def connect_failure_record(
    *, sending_organisation: SendingOrganisation, error: str
) -> OutboundHalt | None:
    """Count a retryable failure; past the threshold the circuit opens (or, after a
    failed trial send, stays open for another cool-down)."""
    counter, _ = ConnectFailureCount.objects.select_for_update().get_or_create(
        sending_organisation=sending_organisation
    )
    counter.consecutive += 1
    counter.save(update_fields=["consecutive", "updated_at"])
    if counter.consecutive < settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD:
        return None
    retry_at = timezone.now() + timedelta(
        seconds=settings.DOCFLOW_CIRCUIT_COOLDOWN_SECONDS
    )
    halt = (
        OutboundHalt.objects.select_for_update()
        .filter(
            sending_organisation=sending_organisation,
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
        reason=(
            f"{counter.consecutive} consecutive failures talking to Connect "
            f"(last: {error[:120]})"
        ),
        sending_organisation=sending_organisation,
        retry_at=retry_at,
    )


def connect_success_record(
    *, sending_organisation_id: int, circuit_open: bool = True
) -> None:
    """A success resets the failure count and closes an open circuit (trial passed);
    ``circuit_open=False`` says the caller saw none open before its request."""
    ConnectFailureCount.objects.filter(
        sending_organisation_id=sending_organisation_id, consecutive__gt=0
    ).update(consecutive=0)
    if not circuit_open:
        return
    for halt in OutboundHalt.objects.filter(
        sending_organisation_id=sending_organisation_id,
        kind=HaltKind.CIRCUIT_OPEN,
        closed_at__isnull=True,
    ):
        outbound_halt_close(halt=halt, reason="A trial send succeeded.")


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
