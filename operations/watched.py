"""What the watchdog times, read only: each watched state and destination profile,
its threshold (profile data first, then the site default) and the documents over
it. The watchdog service (``services.watchdog``) raises incidents from these; the
dashboard's selectors count them. See ``services.watchdog`` for the rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import CharField, Count, F, Min, OuterRef, QuerySet, Subquery
from django.db.models import Value as V
from django.db.models.functions import Coalesce
from django.utils import timezone

from docflow.models import DestinationProfile, Document, DocumentStatus, Organisation

# The states the watchdog times. `delivered` only where the profile reports accepted
# (elsewhere delivered is final).
WATCHED_STATES = (
    DocumentStatus.SUBMITTED,
    DocumentStatus.READY,
    DocumentStatus.SENDING,
    DocumentStatus.RECEIVED,
    DocumentStatus.DELIVERED,
)
# The scope's endpoint type for submitted documents no profile can be found for.
UNRESOLVED = "unresolved"


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

    def as_row(self) -> dict:
        """The row the dashboard shows (and the watchdog's snapshot keeps)."""
        return {
            "state": self.state,
            "endpoint_type": self.endpoint_type,
            "threshold_seconds": self.threshold_seconds,
            "count": self.count,
        }


@dataclass(frozen=True)
class WatchedScope:
    """One state and endpoint type the watchdog times, and the documents over its
    threshold (a query, not yet run)."""

    state: str
    endpoint_type: str
    threshold_seconds: int
    documents: QuerySet


def threshold_for(profile: DestinationProfile | None, state: str) -> int | None:
    """Seconds a document may stay in ``state`` for this profile (profile data first,
    then the site default; the site default alone without a profile); None where the
    state is not watched for it."""
    if (
        profile is not None
        and state == DocumentStatus.DELIVERED
        and not profile.reports_accepted
    ):
        return None
    expected = (profile.expected_seconds_in_state or {}) if profile else {}
    seconds = expected.get(
        state, settings.DOCFLOW_OPS_DEFAULT_SECONDS_IN_STATE.get(state)
    )
    return int(seconds) if seconds else None


def _submitted_with_endpoint_type() -> QuerySet:
    # The resolved destination's endpoint type, else the directory entry's for the
    # code the source system gave (preparation has not resolved it yet), else "".
    directory = Organisation.objects.filter(
        ods_code=OuterRef("destination_ods_code")
    ).values("endpoint_type")[:1]
    return Document.objects.filter(status=DocumentStatus.SUBMITTED).annotate(
        watched_endpoint_type=Coalesce(
            F("destination__endpoint_type"),
            Subquery(directory),
            V(""),
            output_field=CharField(),
        )
    )


def watched_scopes(*, now=None) -> Iterator[WatchedScope]:
    """Every state and endpoint type the watchdog times, with its threshold and the
    query of the documents over it (one indexed query per scope when run)."""
    now = now or timezone.now()
    profiles = list(DestinationProfile.objects.all())
    for profile in profiles:
        for state in WATCHED_STATES:
            seconds = threshold_for(profile, state)
            if seconds is None:
                continue
            cut = now - timedelta(seconds=seconds)
            if state == DocumentStatus.SUBMITTED:
                documents = _submitted_with_endpoint_type().filter(
                    status_changed_at__lt=cut,
                    watched_endpoint_type=profile.endpoint_type,
                )
            else:
                documents = Document.objects.filter(
                    status=state,
                    status_changed_at__lt=cut,
                    destination__endpoint_type=profile.endpoint_type,
                )
            yield WatchedScope(state, profile.endpoint_type, seconds, documents)
    seconds = threshold_for(None, DocumentStatus.SUBMITTED)
    if seconds is not None:
        yield WatchedScope(
            DocumentStatus.SUBMITTED,
            UNRESOLVED,
            seconds,
            _submitted_with_endpoint_type()
            .filter(status_changed_at__lt=now - timedelta(seconds=seconds))
            .exclude(watched_endpoint_type__in=[p.endpoint_type for p in profiles]),
        )


def stuck_documents_find(*, now=None) -> list[Stuck]:
    """Per watched state and profile: how many documents are over the threshold."""
    now = now or timezone.now()
    found = []
    for scope in watched_scopes(now=now):
        row = scope.documents.aggregate(
            count=Count("id"), oldest=Min("status_changed_at")
        )
        if row["count"]:
            found.append(
                Stuck(
                    state=scope.state,
                    endpoint_type=scope.endpoint_type,
                    threshold_seconds=scope.threshold_seconds,
                    count=row["count"],
                    oldest_seconds=int((now - row["oldest"]).total_seconds()),
                )
            )
    return found
