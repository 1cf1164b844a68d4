"""Destination health: how each practice answers, and what to do when one stops
acknowledging (pause it, with an incident) or refuses everything (an incident)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from docflow.models import DestinationProfile, Document, DocumentStatus
from operations.models import (
    Incident,
    IncidentKind,
    IncidentSeverity,
    IncidentState,
)
from operations.services.incidents import (
    Found,
    incidents_raise_many,
    incidents_resolve_cleared,
)
from operations.watched import kept_by_destination, threshold_for
from transmissions.engine.controls import (
    destination_pause_open,
    destination_pauses_open,
)
from transmissions.models import Transmission

ACCEPTED_CODE = 4010
REJECTED_CODE = 4005
REFUSAL_CODES = ("DC02", "DC03")


@dataclass
class DestinationHealth:
    destination_ods_code: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    median_seconds_to_accept: float | None = None
    rejection_mix: dict[str, int] = field(default_factory=dict)
    unacknowledged: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        answered = self.accepted + self.rejected
        return self.accepted / answered if answered else None


def unacknowledged_counts(*, now=None) -> dict[str, int]:
    """Per destination: documents received or delivered (where the profile reports
    accepted) for longer than the profile allows: the kept count per destination
    minus those that entered the state after the cut (see ``operations.watched``)."""
    now = now or timezone.now()
    watched = (DocumentStatus.RECEIVED, DocumentStatus.DELIVERED)
    kept: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for state, endpoint_type, code, total in kept_by_destination(watched):
        if endpoint_type is not None:
            kept[state, endpoint_type][code] += total
    counts: Counter[str] = Counter()
    for profile in DestinationProfile.objects.all():
        for state in watched:
            seconds = threshold_for(profile, state)
            if seconds is None or not kept.get((state, profile.endpoint_type)):
                continue
            over = Counter(kept[state, profile.endpoint_type])
            over.subtract(
                dict(
                    Document.objects.filter(
                        status=state,
                        status_changed_at__gte=now - timedelta(seconds=seconds),
                        destination__endpoint_type=profile.endpoint_type,
                    )
                    .order_by()
                    .values_list("destination_ods_code")
                    .annotate(n=Count("id"))
                    .values_list("destination_ods_code", "n")
                )
            )
            counts.update({code: n for code, n in over.items() if n > 0})
    return dict(counts)


def destination_health_list(*, now=None) -> list[DestinationHealth]:
    """Health of every destination sent to in the window, worst acceptance first."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.DOCFLOW_OPS_HEALTH_WINDOW_SECONDS)
    by_code: dict[str, DestinationHealth] = {}

    def health(code: str) -> DestinationHealth:
        return by_code.setdefault(code, DestinationHealth(destination_ods_code=code))

    rows = (
        Transmission.objects.filter(posted_at__gte=since)
        .values("destination_ods_code")
        .annotate(
            sent=Count("id"),
            accepted=Count("id", filter=Q(status_code=ACCEPTED_CODE)),
            rejected=Count("id", filter=Q(status_code=REJECTED_CODE)),
        )
    )
    for row in rows:
        item = health(row["destination_ods_code"])
        item.sent, item.accepted, item.rejected = (
            row["sent"],
            row["accepted"],
            row["rejected"],
        )
    durations: dict[str, list[float]] = defaultdict(list)
    for code, posted, answered in Transmission.objects.filter(
        posted_at__gte=since, status_code=ACCEPTED_CODE, last_status_at__isnull=False
    ).values_list("destination_ods_code", "posted_at", "last_status_at"):
        durations[code].append((answered - posted).total_seconds())
    for code, values in durations.items():
        health(code).median_seconds_to_accept = statistics.median(values)
    for row in (
        Transmission.objects.filter(posted_at__gte=since, status_code=REJECTED_CODE)
        .values("destination_ods_code", "rejection_code")
        .annotate(n=Count("id"))
    ):
        mix = health(row["destination_ods_code"]).rejection_mix
        mix[row["rejection_code"] or "unknown"] = row["n"]
    for code, count in unacknowledged_counts(now=now).items():
        health(code).unacknowledged = count
    return sorted(
        by_code.values(),
        key=lambda h: (
            h.acceptance_rate if h.acceptance_rate is not None else 1.0,
            -h.unacknowledged,
            h.destination_ods_code,
        ),
    )


def destinations_watch(*, now=None) -> dict[str, set[str]]:
    """Pause (when enabled) and raise an incident for each destination with too many
    unacknowledged documents, and raise one for each destination refusing documents
    (held as inactive or not receiving); resolve those that cleared."""
    now = now or timezone.now()
    unacknowledged = {
        code: count
        for code, count in unacknowledged_counts(now=now).items()
        if count >= settings.DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD
    }
    paused = set(
        destination_pauses_open().values_list("destination_ods_code", flat=True)
    )
    auto = settings.DOCFLOW_OPS_AUTO_PAUSE_DESTINATIONS
    found = {}
    for code, count in unacknowledged.items():
        if auto and code not in paused:
            destination_pause_open(
                destination_ods_code=code,
                reason=f"{count} documents not acknowledged in time",
            )
            paused.add(code)
        found[code] = Found(
            severity=IncidentSeverity.MAJOR,
            summary=(
                f"{code} has not acknowledged {count} document(s) in time"
                + ("; sending to it is paused" if auto else "")
            ),
            details={"unacknowledged": count, "paused": auto},
        )
    # Only new, changed or reminding incidents are written one by one.
    incidents_raise_many(kind=IncidentKind.DESTINATION_UNACKNOWLEDGED, found=found)
    # An automatic pause needs a person to lift it: its incident stays open until then.
    active = set(unacknowledged) | (
        paused & _unresolved_scopes(IncidentKind.DESTINATION_UNACKNOWLEDGED)
    )
    incidents_resolve_cleared(
        kind=IncidentKind.DESTINATION_UNACKNOWLEDGED,
        active_scopes=active,
        resolution="Acknowledgements are back in time; the destination is not paused.",
    )
    # From the held documents' partial index alone (document_held_by_reason).
    refusing = dict(
        Document.objects.filter(
            status=DocumentStatus.HELD, status_reason__in=REFUSAL_CODES
        )
        .order_by()
        .values_list("destination_ods_code")
        .annotate(n=Count("*"))
        .values_list("destination_ods_code", "n")
    )
    incidents_raise_many(
        kind=IncidentKind.DESTINATION_REFUSING,
        found={
            code: Found(
                severity=IncidentSeverity.MAJOR,
                summary=(
                    f"{code} is inactive or not receiving: {count} document(s) held "
                    "for a person to reroute"
                ),
                details={"held": count},
            )
            for code, count in refusing.items()
        },
    )
    incidents_resolve_cleared(
        kind=IncidentKind.DESTINATION_REFUSING,
        active_scopes=set(refusing),
        resolution="No document is held for this destination any more.",
    )
    return {"unacknowledged": set(unacknowledged), "refusing": set(refusing)}


def _unresolved_scopes(kind: str) -> set[str]:
    return set(
        Incident.objects.filter(
            kind=kind, state__in=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED]
        )
        .order_by()
        .values_list("scope", flat=True)
    )
