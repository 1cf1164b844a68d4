"""Surges over the window: system errors halt outbound through the kill switch;
rejections per destination and per document type raise incidents; every open
automatic halt (credentials, circuit, per-organisation surge) is an incident.

The checks read the statuses of the last window only, from the transmissions'
recent-status index (``last_status_at``, carrying the status code, destination and
the document type each transmission copies from its document): their cost follows
the window's traffic, and no document is read."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from operations.models import Incident, IncidentKind, IncidentSeverity, IncidentState
from operations.services.incidents import incident_raise, incidents_resolve_cleared
from transmissions.engine.controls import outbound_pause
from transmissions.models import HaltKind, OutboundHalt, Transmission

SYSTEM_ERROR_CODES = (5000, 7000)
REJECTED_CODE = 4005
SURGE_HALT_REASON = "System-error surge detected by the operations watch"
# Halts the transmission engine opens by itself; an operator's kill switch is not an
# incident (the system-error surge incident covers the one we open).
AUTOMATIC_HALTS = (HaltKind.TOKEN_FAILURE, HaltKind.CIRCUIT_OPEN, HaltKind.SURGE)


def _window_start(now):
    return now - timedelta(seconds=settings.DOCFLOW_SURGE_WINDOW_SECONDS)


def _is_surge(count: int, total: int, *, minimum: int, rate: float) -> bool:
    return count >= minimum and total > 0 and count / total >= rate


def system_error_surge_check(*, now=None) -> Incident | None:
    """Too many 5000/7000 statuses across all destinations: pull the kill switch and
    open one incident saying so; it resolves when an operator lifts that halt."""
    now = now or timezone.now()
    # Counted from the recent-status index alone (it carries the codes).
    seen = Transmission.objects.filter(last_status_at__gte=_window_start(now))
    row = seen.aggregate(
        total=Count("*"),
        errors=Count("status_code", filter=Q(status_code__in=SYSTEM_ERROR_CODES)),
    )
    surging = _is_surge(
        row["errors"],
        row["total"],
        minimum=settings.DOCFLOW_OPS_SYSTEM_ERROR_SURGE_MIN,
        rate=settings.DOCFLOW_OPS_SYSTEM_ERROR_SURGE_RATE,
    )
    incident = Incident.objects.filter(
        kind=IncidentKind.SYSTEM_ERROR_SURGE,
        state__in=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED],
    ).first()
    if surging:
        halt = outbound_pause(
            reason=f"{SURGE_HALT_REASON}: {row['errors']} of {row['total']}",
            actor=None,
        )
        return incident_raise(
            kind=IncidentKind.SYSTEM_ERROR_SURGE,
            scope="all",
            severity=IncidentSeverity.CRITICAL,
            summary=(
                f"System-error surge: {row['errors']} of {row['total']} statuses; "
                "outbound halted by the kill switch"
            ),
            details={
                "errors": row["errors"],
                "total": row["total"],
                "window_seconds": settings.DOCFLOW_SURGE_WINDOW_SECONDS,
                "halt_id": halt.pk,
            },
        ).incident
    if incident is not None:
        halt_id = incident.details.get("halt_id")
        if not OutboundHalt.objects.filter(pk=halt_id, closed_at__isnull=True).exists():
            incidents_resolve_cleared(
                kind=IncidentKind.SYSTEM_ERROR_SURGE,
                active_scopes=set(),
                resolution="The surge passed and outbound was resumed.",
            )
            return None
    return incident


def _rejection_surges(*, now, group_by: str, prefix: str) -> set[str]:
    # The window's statuses from the recent-status index alone, which carries the
    # destination and the document type: no document is read.
    rows = (
        Transmission.objects.filter(last_status_at__gte=_window_start(now))
        .order_by()
        .values(group_by)
        .annotate(
            total=Count("*"),
            rejected=Count("status_code", filter=Q(status_code=REJECTED_CODE)),
        )
    )
    active = set()
    for row in rows:
        if not _is_surge(
            row["rejected"],
            row["total"],
            minimum=settings.DOCFLOW_OPS_REJECTION_SURGE_MIN,
            rate=settings.DOCFLOW_OPS_REJECTION_SURGE_RATE,
        ):
            continue
        scope = f"{prefix}:{row[group_by]}"
        active.add(scope)
        incident_raise(
            kind=IncidentKind.REJECTION_SURGE,
            scope=scope,
            severity=IncidentSeverity.MAJOR,
            summary=(
                f"Rejection surge for {prefix} {row[group_by]}: "
                f"{row['rejected']} of {row['total']} statuses"
            ),
            details={
                "rejected": row["rejected"],
                "total": row["total"],
                "window_seconds": settings.DOCFLOW_SURGE_WINDOW_SECONDS,
            },
        )
    incidents_resolve_cleared(
        kind=IncidentKind.REJECTION_SURGE,
        active_scopes=active,
        scope_prefix=f"{prefix}:",
        resolution="Rejections are back under the surge threshold.",
    )
    return active


def rejection_surges_check(*, now=None) -> set[str]:
    """Rejection surges per destination and per document type, one incident each."""
    now = now or timezone.now()
    return _rejection_surges(
        now=now, group_by="destination_ods_code", prefix="destination"
    ) | _rejection_surges(now=now, group_by="document_type", prefix="document_type")


def outbound_halts_watch() -> set[str]:
    """One incident per open automatic halt of a kind for a scope (an
    organisation's circuits open for some of its destinations make one, naming
    them); resolved when the halts close."""
    groups: dict[str, list[OutboundHalt]] = {}
    for halt in OutboundHalt.objects.filter(
        closed_at__isnull=True, kind__in=AUTOMATIC_HALTS
    ).select_related("sending_organisation"):
        organisation = halt.sending_organisation
        where = organisation.ods_code if organisation else "all"
        groups.setdefault(f"{halt.kind}:{where}", []).append(halt)
    for scope, halts in groups.items():
        halt = halts[0]
        where = scope.partition(":")[2]
        destinations = sorted(h.destination_ods_code for h in halts)
        if "" not in destinations:  # circuits open for some destinations only
            where = f"{where} to {', '.join(destinations)}"
        incident_raise(
            kind=IncidentKind.OUTBOUND_HALTED,
            scope=scope,
            severity=IncidentSeverity.CRITICAL,
            summary=f"Outbound halted for {where}: {halt.get_kind_display()}",
            details={
                "halt_id": halt.pk,
                "kind": halt.kind,
                "reason": halt.reason,
                "destinations": [code for code in destinations if code],
            },
        )
    incidents_resolve_cleared(
        kind=IncidentKind.OUTBOUND_HALTED,
        active_scopes=set(groups),
        resolution="The halt was lifted.",
    )
    return set(groups)
