"""The watchdog: documents in a state longer than their destination profile allows
raise one incident per state and profile, resolved when none is stuck any more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from docflow.models import DestinationProfile, Document, DocumentStatus
from operations.models import IncidentKind, IncidentSeverity
from operations.services.incidents import incident_raise, incidents_resolve_cleared
from operations.services.snapshots import snapshot_save

# The states the watchdog times. `delivered` only where the profile reports accepted
# (elsewhere delivered is final).
WATCHED_STATES = (
    DocumentStatus.READY,
    DocumentStatus.SENDING,
    DocumentStatus.RECEIVED,
    DocumentStatus.DELIVERED,
)


@dataclass(frozen=True)
class Stuck:
    state: str
    endpoint_type: str
    threshold_seconds: int
    count: int
    oldest_seconds: int

    @property
    def scope(self) -> str:
        return f"{self.state}:{self.endpoint_type}"


def threshold_for(profile: DestinationProfile, state: str) -> int | None:
    """Seconds a document may stay in ``state`` for this profile (profile data first,
    then the site default); None where the state is not watched for it."""
    if state == DocumentStatus.DELIVERED and not profile.reports_accepted:
        return None
    expected = profile.expected_seconds_in_state or {}
    seconds = expected.get(
        state, settings.DOCFLOW_OPS_DEFAULT_SECONDS_IN_STATE.get(state)
    )
    return int(seconds) if seconds else None


def stuck_documents_find(*, now=None) -> list[Stuck]:
    """Per watched state and profile: how many documents are over the threshold."""
    now = now or timezone.now()
    found = []
    for profile in DestinationProfile.objects.all():
        for state in WATCHED_STATES:
            seconds = threshold_for(profile, state)
            if seconds is None:
                continue
            row = Document.objects.filter(
                status=state,
                status_changed_at__lt=now - timedelta(seconds=seconds),
                destination__endpoint_type=profile.endpoint_type,
            ).aggregate(count=Count("id"), oldest=Min("status_changed_at"))
            if row["count"]:
                found.append(
                    Stuck(
                        state=state,
                        endpoint_type=profile.endpoint_type,
                        threshold_seconds=seconds,
                        count=row["count"],
                        oldest_seconds=int((now - row["oldest"]).total_seconds()),
                    )
                )
    return found


def watchdog_run(*, now=None) -> dict[str, int]:
    """Raise or join one incident per stuck state and profile; resolve the rest."""
    now = now or timezone.now()
    stuck = stuck_documents_find(now=now)
    snapshot_save(
        key="stuck",
        data={
            "rows": [
                {
                    "state": item.state,
                    "endpoint_type": item.endpoint_type,
                    "threshold_seconds": item.threshold_seconds,
                    "count": item.count,
                }
                for item in stuck
            ]
        },
        now=now,
    )
    for item in stuck:
        label = DocumentStatus(item.state).label.lower()
        incident_raise(
            kind=IncidentKind.STUCK_DOCUMENTS,
            scope=item.scope,
            severity=IncidentSeverity.CRITICAL
            if item.state == DocumentStatus.SENDING
            else IncidentSeverity.MAJOR,
            summary=(
                f"{item.count} {item.endpoint_type} document(s) {label} for longer "
                f"than {item.threshold_seconds} s"
            ),
            details={
                "state": item.state,
                "endpoint_type": item.endpoint_type,
                "count": item.count,
                "oldest_seconds": item.oldest_seconds,
                "threshold_seconds": item.threshold_seconds,
            },
        )
    resolved = incidents_resolve_cleared(
        kind=IncidentKind.STUCK_DOCUMENTS,
        active_scopes={item.scope for item in stuck},
        resolution="No document is over the threshold any more.",
    )
    return {"stuck": len(stuck), "resolved": len(resolved)}
