"""The watchdog: documents in a state longer than their destination profile allows
raise one incident per state and profile, resolved when none is stuck any more.

``submitted`` is watched too: a document whose preparation never finishes (its task
keeps timing out, or no worker takes it) must not wait unseen. A submitted document
usually has no resolved destination yet, so its profile is the one of the
directory's entry for its destination ODS code; a document whose code is not in the
directory (or whose entry names no known endpoint type) is counted under the scope
``submitted:unresolved`` with the site default threshold."""

from __future__ import annotations

from django.utils import timezone

from docflow.models import DocumentStatus
from operations.models import IncidentKind, IncidentSeverity
from operations.services.incidents import incident_raise, incidents_resolve_cleared
from operations.services.snapshots import snapshot_save
from operations.watched import stuck_documents_find


def _severity(state: str) -> str:
    # A document stuck mid-send may be at Connect or not: somebody must look now.
    if state == DocumentStatus.SENDING:
        return IncidentSeverity.CRITICAL
    return IncidentSeverity.MAJOR


def watchdog_run(*, now=None) -> dict[str, int]:
    """Raise or join one incident per stuck state and profile; resolve the rest."""
    now = now or timezone.now()
    stuck = stuck_documents_find(now=now)
    snapshot_save(
        key="stuck",
        data={"rows": [item.as_row() for item in stuck]},
        now=now,
    )
    for item in stuck:
        label = DocumentStatus(item.state).label.lower()
        incident_raise(
            kind=IncidentKind.STUCK_DOCUMENTS,
            scope=item.scope,
            severity=_severity(item.state),
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
