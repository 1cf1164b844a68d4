"""Connect's changes feed: an organisation whose feed has failed to read for longer
than ``DOCFLOW_OPS_FEED_FAILING_SECONDS`` raises one incident (scope: its ODS code),
resolved once the feed reads again.

A feed that cannot be read (Connect down, or a page docflow cannot parse) does not
lose documents: each round starts again from the saved cursor and the per-document
poll tracks them meanwhile, slowly. What it must not do is fail unseen: tracking
records since when every read has failed (``ChangesCursor.failing_since``) and the
last failure's kind, and this watch reads that.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from operations.models import IncidentKind, IncidentSeverity
from operations.services.incidents import incident_raise, incidents_resolve_cleared
from transmissions.models import ChangesCursor


def changes_feeds_watch(*, now=None) -> set[str]:
    """Raise (or join) an incident for each organisation whose changes feed has
    failed for too long; resolve those that read again. Returns their ODS codes."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.DOCFLOW_OPS_FEED_FAILING_SECONDS)
    failing = ChangesCursor.objects.filter(failing_since__lte=since).select_related(
        "sending_organisation"
    )
    scopes = set()
    for cursor in failing:
        code = cursor.sending_organisation.ods_code
        scopes.add(code)
        minutes = int((now - cursor.failing_since).total_seconds() // 60)
        incident_raise(
            kind=IncidentKind.CHANGES_FEED_FAILING,
            scope=code,
            severity=IncidentSeverity.MAJOR,
            summary=(
                f"Connect's changes feed for {code} has not been read for {minutes} "
                "min; documents are tracked one poll at a time meanwhile"
            ),
            details={
                "failing_since": cursor.failing_since.isoformat(),
                "last_failure": cursor.last_failure,
            },
        )
    incidents_resolve_cleared(
        kind=IncidentKind.CHANGES_FEED_FAILING,
        active_scopes=scopes,
        resolution="The changes feed reads again.",
    )
    return scopes
