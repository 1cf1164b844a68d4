"""What the watchdog times, read only: each watched state and destination profile,
its threshold (profile data first, then the site default) and the documents over
it. The watchdog service (``services.watchdog``) raises incidents from these; the
dashboard's selectors count them. See ``services.watchdog`` for the rules.

Counting the documents over a threshold would read every old document in a watched
state on every run (old received and delivered documents pile up with the table).
Instead the number over it is the kept count of the state (``operations.counting``)
minus the documents that entered the state after the cut, a range of the (status,
status_changed_at) index as long as the threshold: a run reads what changed lately,
not the table. The oldest one over is the first entry of that index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import CharField, F, OuterRef, QuerySet, Subquery
from django.db.models import Value as V
from django.db.models.functions import Coalesce
from django.utils import timezone

from docflow.models import DestinationProfile, Document, DocumentStatus, Organisation
from operations.counting import (
    documents_by_destination_kept,
    kept_destination_ids,
    kept_unresolved_codes,
)

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
    """One state and endpoint type the watchdog times, the documents over its
    threshold and those in the state but not yet over it (queries, not yet run)."""

    state: str
    endpoint_type: str
    threshold_seconds: int
    documents: QuerySet
    recent: QuerySet


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


def _scope(state, endpoint_type, seconds, documents, cut) -> WatchedScope:
    return WatchedScope(
        state,
        endpoint_type,
        seconds,
        documents.filter(status_changed_at__lt=cut),
        documents.filter(status_changed_at__gte=cut),
    )


def watched_scopes(*, now=None) -> Iterator[WatchedScope]:
    """Every state and endpoint type the watchdog times, with its threshold and the
    queries of the documents over it and not yet over it."""
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
                    watched_endpoint_type=profile.endpoint_type,
                )
            else:
                documents = Document.objects.filter(
                    status=state,
                    destination__endpoint_type=profile.endpoint_type,
                )
            yield _scope(state, profile.endpoint_type, seconds, documents, cut)
    seconds = threshold_for(None, DocumentStatus.SUBMITTED)
    if seconds is not None:
        yield _scope(
            DocumentStatus.SUBMITTED,
            UNRESOLVED,
            seconds,
            _submitted_with_endpoint_type().exclude(
                watched_endpoint_type__in=[p.endpoint_type for p in profiles]
            ),
            now - timedelta(seconds=seconds),
        )


def kept_by_destination(states) -> list[tuple[str, str, str, int]]:
    """(state, endpoint type, destination ODS code, documents) from the kept counts,
    the endpoint type found as the watchdog's queries find it: the resolved
    destination's; for a submitted document without one, the directory entry's for
    its code, else ""; a document in another state without a resolved destination
    has none (None)."""
    counts = documents_by_destination_kept(states)
    # The directory entries are found by joining the counts in the database: the
    # thousands of destinations are not sent back as lists of ids and codes.
    by_id = dict(
        Organisation.objects.filter(pk__in=kept_destination_ids(states))
        .order_by()
        .values_list("pk", "endpoint_type")
    )
    by_code = {}
    if DocumentStatus.SUBMITTED in states:
        by_code = dict(
            Organisation.objects.filter(
                ods_code__in=kept_unresolved_codes([DocumentStatus.SUBMITTED])
            )
            .order_by()
            .values_list("ods_code", "endpoint_type")
        )
    rows = []
    for (state, destination_id, code), total in counts.items():
        if destination_id:
            endpoint_type = by_id.get(destination_id)
        elif state == DocumentStatus.SUBMITTED:
            endpoint_type = by_code.get(code) or ""
        else:
            endpoint_type = None
        rows.append((state, endpoint_type, code, total))
    return rows


def stuck_documents_find(*, now=None) -> list[Stuck]:
    """Per watched state and profile: how many documents are over the threshold
    (kept count minus those that entered the state after the cut), and how long
    the oldest has waited."""
    now = now or timezone.now()
    scopes = list(watched_scopes(now=now))
    profile_types = {s.endpoint_type for s in scopes if s.endpoint_type != UNRESOLVED}
    totals: dict[tuple[str, str], int] = {}
    for state, endpoint_type, _, total in kept_by_destination(WATCHED_STATES):
        if endpoint_type is None:
            continue
        if state == DocumentStatus.SUBMITTED and endpoint_type not in profile_types:
            endpoint_type = UNRESOLVED
        totals[state, endpoint_type] = totals.get((state, endpoint_type), 0) + total
    found = []
    for scope in scopes:
        total = totals.get((scope.state, scope.endpoint_type), 0)
        if not total:
            continue
        count = total - scope.recent.count()
        if count <= 0:
            continue
        oldest = (
            scope.documents.order_by("status_changed_at")
            .values_list("status_changed_at", flat=True)
            .first()
        )
        if oldest is None:  # moved on between the two reads
            continue
        found.append(
            Stuck(
                state=scope.state,
                endpoint_type=scope.endpoint_type,
                threshold_seconds=scope.threshold_seconds,
                count=count,
                oldest_seconds=int((now - oldest).total_seconds()),
            )
        )
    return found
