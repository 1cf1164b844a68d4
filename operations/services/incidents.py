"""Incidents: open or join, acknowledge, resolve; one alert per opening and
resolution, reminders only at the escalation interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_fsm import can_proceed
from django_q.tasks import async_task

from audit.services import audit_record
from operations.models import (
    Incident,
    IncidentKind,
    IncidentNotification,
    IncidentSeverity,
    IncidentState,
    NotificationEvent,
)

NOTIFY_TASK = "operations.tasks.notification_deliver"
_UNRESOLVED = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


class IncidentTransitionRefused(Exception):
    """The incident is not in a state that allows this."""


@dataclass(frozen=True)
class Raised:
    incident: Incident
    created: bool


def _unresolved(kind: str, scope: str):
    return Incident.objects.select_for_update().filter(
        kind=kind,
        scope=scope,
        state__in=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED],
    )


def _notify(incident: Incident, event: str) -> IncidentNotification:
    notification = IncidentNotification.objects.create(incident=incident, event=event)
    transaction.on_commit(lambda: async_task(NOTIFY_TASK, notification.pk))
    return notification


def _audit(incident: Incident, action: str, actor: Any, **data) -> None:
    audit_record(
        action=f"incident.{action}",
        target_type="incident",
        target_id=str(incident.public_id),
        data={"kind": incident.kind, "scope": incident.scope, **data},
        actor=actor,
    )


@transaction.atomic
def incident_raise(
    *,
    kind: str,
    scope: str,
    summary: str,
    severity: str,
    details: dict[str, Any] | None = None,
    actor: Any = None,
) -> Raised:
    """Open an incident for a problem, or join the unresolved one of the same kind and
    scope (one incident per problem; a reminder only once the interval has passed)."""
    now = timezone.now()
    incident = _unresolved(kind, scope).first()
    if incident is None:
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    kind=kind,
                    scope=scope[:200],
                    summary=summary[:255],
                    severity=severity,
                    details=details or {},
                    opened_at=now,
                    last_seen_at=now,
                    last_notified_at=now,
                )
        except IntegrityError:
            # Another worker opened it between our read and our insert: join that.
            incident = _unresolved(kind, scope).get()
        else:
            _audit(incident, "opened", actor, severity=severity, summary=summary)
            _notify(incident, NotificationEvent.OPENED)
            return Raised(incident, True)
    incident.occurrences += 1
    incident.last_seen_at = now
    incident.summary = summary[:255]
    incident.details = details or {}
    fields = ["occurrences", "last_seen_at", "summary", "details"]
    interval = timedelta(seconds=settings.DOCFLOW_OPS_REMINDER_SECONDS)
    due = (
        incident.last_notified_at is None or now - incident.last_notified_at >= interval
    )
    if incident.state == IncidentState.OPEN and due:
        incident.last_notified_at = now
        fields.append("last_notified_at")
        _notify(incident, NotificationEvent.REMINDER)
    incident.save(update_fields=fields)
    return Raised(incident, False)


@dataclass(frozen=True)
class Found:
    """One problem a detection saw this run: the incident it raises or joins."""

    summary: str
    severity: str
    details: dict[str, Any]


def incidents_raise_many(*, kind: str, found: dict[str, Found]) -> int:
    """``incident_raise`` for every scope a detection saw, at the cost of what
    changed: one read of the kind's unresolved incidents, one statement for all
    those seen again unchanged (occurrences and last seen), and a full raise only
    for new problems, changed figures or a reminder due. Returns the full raises."""
    if not found:
        return 0
    now = timezone.now()
    interval = timedelta(seconds=settings.DOCFLOW_OPS_REMINDER_SECONDS)
    # The kind's own unresolved rows, as values (no scope list sent, no models
    # built): the incidents table, not the detection's input, bounds the read.
    existing = {
        scope: (pk, state, summary, details, last_notified_at)
        for pk, scope, state, summary, details, last_notified_at in (
            Incident.objects.filter(kind=kind, state__in=_UNRESOLVED)
            .order_by()
            .values_list(
                "pk", "scope", "state", "summary", "details", "last_notified_at"
            )
        )
    }
    unchanged, raised = set(), 0
    for scope, problem in found.items():
        incident = existing.get(scope[:200])
        if incident is not None:
            pk, state, summary, details, last_notified_at = incident
            reminder_due = state == IncidentState.OPEN and (
                last_notified_at is None or now - last_notified_at >= interval
            )
            if (
                not reminder_due
                and summary == problem.summary[:255]
                and details == problem.details
            ):
                unchanged.add(pk)
                continue
        incident_raise(
            kind=kind,
            scope=scope,
            summary=problem.summary,
            severity=problem.severity,
            details=problem.details,
        )
        raised += 1
    if unchanged:
        _seen_again(kind, unchanged, {pk for pk, *_ in existing.values()}).update(
            occurrences=F("occurrences") + 1, last_seen_at=now
        )
    return raised


def _seen_again(kind: str, unchanged: set[int], read: set[int]):
    # Name whichever list is shorter: the unchanged incidents, or (when nearly all
    # of the kind's are unchanged, as on a quiet run) the few others read, among
    # the kind's unresolved ones up to the newest read (one opened since is not
    # among those seen).
    others = read - unchanged
    if len(unchanged) <= len(others):
        return Incident.objects.filter(pk__in=unchanged)
    return Incident.objects.filter(
        kind=kind, state__in=_UNRESOLVED, pk__lte=max(read)
    ).exclude(pk__in=others)


@transaction.atomic
def incident_acknowledge(*, incident: Incident, actor: Any, note: str = "") -> Incident:
    """Somebody takes the incident: it gets an owner and stops reminding; their
    note (optional) is kept in the audit event."""
    locked = Incident.objects.select_for_update().get(pk=incident.pk)
    if not can_proceed(locked.acknowledge):
        raise IncidentTransitionRefused(
            f"An incident that is {locked.state} cannot be acknowledged."
        )
    locked.acknowledge()
    locked.acknowledged_at = timezone.now()
    owner = actor if getattr(actor, "is_authenticated", False) else None
    locked.owner = owner
    locked.save(update_fields=["state", "acknowledged_at", "owner"])
    note = note.strip()[:255]
    _audit(locked, "acknowledged", actor, **({"note": note} if note else {}))
    return locked


@transaction.atomic
def incident_resolve(
    *, incident: Incident, resolution: str, actor: Any = None
) -> Incident:
    """Close an incident (a person, or the system when the condition cleared) with
    the reason why, and say so once; resolving a resolved incident is a no-op."""
    if not resolution.strip():
        raise IncidentTransitionRefused("Say why the incident is resolved.")
    locked = Incident.objects.select_for_update().get(pk=incident.pk)
    if locked.state == IncidentState.RESOLVED:
        return locked
    locked.resolve()
    locked.resolved_at = timezone.now()
    locked.resolution = resolution.strip()[:255]
    locked.last_notified_at = locked.resolved_at
    locked.save(
        update_fields=["state", "resolved_at", "resolution", "last_notified_at"]
    )
    _audit(locked, "resolved", actor, resolution=locked.resolution)
    _notify(locked, NotificationEvent.RESOLVED)
    return locked


def incidents_resolve_cleared(
    *, kind: str, active_scopes: set[str], resolution: str, scope_prefix: str = ""
) -> list[Incident]:
    """Auto-resolve the unresolved incidents of a kind whose scope is no longer seen
    by the detection that raises them."""
    # The kind's unresolved scopes are read and compared here: a NOT IN of every
    # scope still seen would send them all to the database on every run.
    cleared = [
        pk
        for pk, scope in Incident.objects.filter(
            kind=kind, state__in=_UNRESOLVED, scope__startswith=scope_prefix
        )
        .order_by()
        .values_list("pk", "scope")
        if scope not in active_scopes
    ]
    if not cleared:
        return []
    return [
        incident_resolve(incident=incident, resolution=resolution)
        for incident in Incident.objects.filter(pk__in=cleared)
    ]


def incident_raise_for_unclassified_reason(
    *, work_item: Any, category: str, reason_code: str, actor: Any = None
) -> Raised:
    """One low incident per unknown reason code while it is unresolved: every item
    opened with that code joins it (a receiver of casework's
    ``needs_classifying``)."""
    # The code only, never free text (casework records unrecognised text as
    # UNRECOGNISED_TEXT): the scope and summary may be shown and sent anywhere.
    return incident_raise(
        kind=IncidentKind.REASON_NOT_CLASSIFIED,
        scope=f"reason:{reason_code}",
        summary=(
            f"Work items opened with the reason {reason_code}, which no reason in "
            "the reference data matches: classify it in the admin (Work item "
            "reasons)."
        ),
        severity=IncidentSeverity.LOW,
        details={
            "reason_code": reason_code,
            "category": category,
            "last_work_item": str(work_item.public_id),
        },
        actor=actor,
    )


def incident_raise_for_suspicious_answer(
    *, quarantined: Any, actor: Any = None
) -> Raised:
    """One incident per mailbox that answers for documents not sent to it, while it
    is unresolved (a receiver of the MESH channel's ``suspicious_answer_received``):
    somebody is spoofing or misrouting practice answers, and nothing was applied."""
    sender = quarantined.sender_mailbox or "unknown"
    return incident_raise(
        kind=IncidentKind.MESH_ANSWER_SUSPICIOUS,
        scope=f"mesh-sender:{sender}",
        summary=(
            f"MESH mailbox {sender} answered for a document sent to another "
            "mailbox; the answer changed nothing and is kept in quarantine."
        ),
        severity=IncidentSeverity.WARNING,
        details={
            "sender_mailbox": sender,
            "our_mailbox": quarantined.mailbox.mailbox_id,
            "last_answer": str(quarantined.public_id),
            "response_code": quarantined.response_code,
        },
        actor=actor,
    )
