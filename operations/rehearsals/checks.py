"""What happened since a rehearsal began, and whether it is what was expected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from casework.models import WorkItem
from operations.models import DestinationPause, Incident, NotificationEvent
from operations.rehearsals.scenarios import Context, Expected
from transmissions.models import HaltKind, OutboundHalt


@dataclass
class Outcome:
    incidents: dict[tuple[str, str], Incident]
    work_items: Counter
    halts: set[str]
    paused: set[str]
    opened_alerts: dict[tuple[str, str], int]

    def compare(self, expected: Expected) -> list[tuple[str, bool]]:
        """(what was expected, whether it happened), one line each."""
        lines = []
        for kind, scope in sorted(expected.incidents):
            lines.append(
                (f"incident {kind} for {scope}", (kind, scope) in self.incidents)
            )
            count = self.opened_alerts.get((kind, scope), 0)
            lines.append(
                (f"exactly one alert for its opening (sent {count})", count == 1)
            )
        for category, count in expected.work_items:
            have = self.work_items.get(category, 0)
            lines.append(
                (f"{count} {category} work item(s) (found {have})", have >= count)
            )
        for kind in sorted(expected.halts):
            lines.append((f"outbound halt {kind}", kind in self.halts))
        for code in sorted(expected.paused):
            lines.append((f"sending to {code} paused", code in self.paused))
        return lines


def rehearsal_outcome(ctx: Context) -> Outcome:
    """What happened since the rehearsal began."""
    incidents = {
        (i.kind, i.scope): i
        for i in Incident.objects.filter(opened_at__gte=ctx.started_at)
    }
    alerts = {
        key: incident.notifications.filter(event=NotificationEvent.OPENED).count()
        for key, incident in incidents.items()
    }
    work_items = Counter(
        WorkItem.objects.filter(document__in=[d.pk for d in ctx.documents]).values_list(
            "category", flat=True
        )
    )
    halts = set(
        OutboundHalt.objects.filter(opened_at__gte=ctx.started_at)
        .exclude(kind=HaltKind.DESTINATION_PAUSE)  # counted as pauses below
        .values_list("kind", flat=True)
    )
    paused = set(
        DestinationPause.objects.filter(opened_at__gte=ctx.started_at).values_list(
            "destination_ods_code", flat=True
        )
    )
    return Outcome(incidents, work_items, halts, paused, alerts)
