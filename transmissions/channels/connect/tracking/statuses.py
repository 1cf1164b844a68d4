"""Connect statuses: what one status means for a transmission and its document.

A status is applied on a page (``StatusPage``): the document's transitions, its
events, its transmission row, the work item rule (``engine.moves``), split
parents (``parents``) and surge checks are written at the page's end, in one
batch. The feed (``feed``) and the per-document poll (``polling``) bring the
statuses; a POST's answer brings the first (``transmission_record_posted``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from casework.classification import reason_code_from_answer
from casework.models import ACTIVE_STATUSES, WorkItem
from casework.services import work_item_category_for
from docflow.models import (
    FINAL_STATES,
    DestinationProfile,
    Document,
    DocumentStatus,
    Organisation,
    SendingOrganisation,
)
from docflow.services import TransitionRefused
from docflow.transitions import DocumentTransitions
from transmissions.channels.connect.adapter import DocumentStatus as ConnectStatus
from transmissions.channels.connect.tracking.parents import split_parent_roll_up
from transmissions.engine.controls import surge_check
from transmissions.engine.moves import work_item_follow
from transmissions.models import (
    Transmission,
    TransmissionState,
)

logger = logging.getLogger(__name__)

S = DocumentStatus

# Connect status code -> the document state it mirrors.
STATE_FOR_CODE = {
    4002: S.RECEIVED,
    4003: S.DELIVERED,
    4010: S.ACCEPTED,
    4005: S.REJECTED,
    5000: S.SYSTEM_ERROR,
    7000: S.SYSTEM_ERROR,
    6000: S.REJECTION_RESOLVED,
}

# (document state, state Connect reports) -> transitions that get there. Pairs not
# listed are stale or out-of-order reports and change nothing.
PATHS: dict[tuple[str, str], list[str]] = {
    (S.RECEIVED, S.DELIVERED): ["mark_delivered"],
    (S.RECEIVED, S.ACCEPTED): ["mark_accepted"],
    (S.RECEIVED, S.REJECTED): ["mark_rejected"],
    (S.RECEIVED, S.SYSTEM_ERROR): ["mark_system_error"],
    (S.DELIVERED, S.ACCEPTED): ["mark_accepted"],
    (S.DELIVERED, S.REJECTED): ["mark_rejected"],
    (S.DELIVERED, S.SYSTEM_ERROR): ["mark_system_error"],
    (S.REJECTED, S.REJECTION_RESOLVED): ["resolve_rejection"],
    (S.SYSTEM_ERROR, S.REJECTION_RESOLVED): ["resolve_rejection"],
}
# Before Connect's answer was recorded the document is still sending (or unknown).
for _target in set(STATE_FOR_CODE.values()):
    for _source in (S.SENDING, S.OUTCOME_UNKNOWN):
        PATHS[(_source, _target)] = [
            "mark_received",
            *PATHS.get((S.RECEIVED, _target), []),
        ]


def poll_interval(*, age: timedelta) -> timedelta:
    """Poll often while a document is young, rarely once it is old."""
    seconds = age.total_seconds()
    if seconds < 600:
        step = settings.DOCFLOW_POLL_FIRST_SECONDS
    elif seconds < 3600:
        step = 300
    elif seconds < 86400:
        step = 1800
    else:
        step = 10800
    return timedelta(seconds=step)


def _reports_accepted(destination: Organisation | None, cache: dict[str, bool]) -> bool:
    endpoint_type = destination.endpoint_type if destination else ""
    if endpoint_type not in cache:
        profile = DestinationProfile.objects.filter(endpoint_type=endpoint_type).first()
        cache[endpoint_type] = profile.reports_accepted if profile else True
    return cache[endpoint_type]


def _tracking_finished(
    document: Document, *, destination: Organisation | None, profiles: dict[str, bool]
) -> bool:
    if document.status in FINAL_STATES:
        return True
    if document.status == S.DELIVERED:
        # DESIGN §3: delivered is final where accepted is never reported.
        return not _reports_accepted(destination, profiles)
    return document.status in (S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED)


@dataclass
class StatusPage:
    """What the changes of one feed page share: profile answers, which documents
    have an active work item (read once, under the documents' locks; None: not
    read, so every document gets the work item rule), and the writes that wait for
    the end of the page: the documents' transitions and events (one batch), then
    the work item rule, split parents, transmission rows and surge checks."""

    profiles: dict[str, bool] = field(default_factory=dict)
    with_items: set[int] | None = field(default_factory=set)
    transmissions: dict[int, Transmission] = field(default_factory=dict)
    # The columns the page's changes touched (a status, a post): only these are
    # written, so a status page never rewrites each row's own GUID.
    transmission_fields: dict[str, None] = field(default_factory=dict)
    surges: set[int] = field(default_factory=set)
    batch: DocumentTransitions = field(default_factory=DocumentTransitions)
    to_sync: dict[int, tuple[Document, Any]] = field(default_factory=dict)
    # One clock for the page: rows changed alike get equal values, written alike.
    now: datetime = field(default_factory=timezone.now)
    parents: dict[int, Any] = field(default_factory=dict)


TRANSMISSION_STATUS_FIELDS = (
    "status_code",
    "rejection_code",
    "last_status_at",
    "state",
    "next_poll_at",
    "updated_at",
)
TRANSMISSION_POSTED_FIELDS = (
    "state",
    "external_id",
    "posted_at",
    "next_attempt_at",
    "next_poll_at",
    "last_error_class",
    "updated_at",
)


def transmission_apply_status(
    *,
    transmission: Transmission,
    status: ConnectStatus,
    actor: Any = None,
    profiles: dict[str, bool] | None = None,
) -> Document:
    """Mirror one Connect status onto the transmission and its document (call inside
    a transaction, the transmission locked). Stale or out-of-order reports change
    nothing."""
    page = StatusPage(profiles={} if profiles is None else profiles, with_items=None)
    document = Document.objects.select_for_update(of=("self",)).get(
        pk=transmission.document_id
    )
    document.destination = transmission.document.destination
    transmission.document = document
    document = page_status_apply(
        transmission, status, actor=actor, profiles=page.profiles, page=page
    )
    page_finish(page)
    return document


def page_status_apply(
    transmission: Transmission,
    status: ConnectStatus,
    *,
    actor: Any,
    profiles: dict[str, bool],
    page: StatusPage,
) -> Document:
    """One status onto one transmission, in memory: the document's transitions,
    its events, its transmission row, its work item and the surge check are written
    at the page's end (``page_finish``)."""
    document = transmission.document
    # Fetched with the transmission; transitions return documents without it.
    destination = document.destination
    target = STATE_FOR_CODE.get(status.status_code)
    now = page.now
    if target is None:
        logger.warning("Unknown Connect status code %s", status.status_code)
    document = _advance(document, target, status, actor=actor, batch=page.batch)
    changed_code = False
    if target is None or document.status == target:
        changed_code = transmission.status_code != status.status_code
        transmission.status_code = status.status_code
        transmission.last_status_at = now
        if status.rejection is not None:
            transmission.rejection_code = _rejection_code(status)[:16]
    else:
        # Older than what the document shows (a POST's answer read after the feed
        # moved it on, say): recorded already, and never over a newer status.
        logger.info("Status %s is behind the document; kept", status.status_code)
    _work_item_sync(document, actor=actor, page=page)
    if _tracking_finished(document, destination=destination, profiles=profiles):
        if transmission.state != TransmissionState.FINAL:
            page.batch.audit(
                action="transmission.final",
                target_type="document",
                target_id=str(document.public_id),
                data={
                    "transmission": str(transmission.public_id),
                    "guid": transmission.external_id,
                    "status_code": status.status_code,
                    "outcome": document.status,
                },
                actor=actor,
            )
        transmission.state = TransmissionState.FINAL
        transmission.next_poll_at = None
    elif transmission.posted_at:
        age = now - transmission.posted_at
        transmission.next_poll_at = now + poll_interval(age=age)
    document.destination = destination
    transmission.document = document
    page.transmissions[transmission.pk] = transmission
    page.transmission_fields.update(dict.fromkeys(TRANSMISSION_STATUS_FIELDS))
    if changed_code and status.status_code in (5000, 7000):
        page.surges.add(document.sending_organisation_id)
    if document.parent_id:
        page.parents.setdefault(document.parent_id, actor)
    return document


def _rejection_code(status: ConnectStatus) -> str:
    """The code to record for a rejection: Connect's code, or the reason its text
    starts with (system reasons arrive as text); never the text itself."""
    rejection = status.rejection
    return reason_code_from_answer(code=rejection.code, text=rejection.reason)


def _advance(
    document: Document,
    target: str | None,
    status: ConnectStatus,
    *,
    actor: Any,
    batch: DocumentTransitions,
) -> Document:
    """Take the document (locked, as it is now) along the path to ``target``, one
    audited transition per step. A refused step means a report is stale or out of
    order: what was taken stands, and the rest of the path is left."""
    for step in PATHS.get((document.status, target), []) if target else []:
        reason = str(status.status_code)
        data = {"guid": status.guid, "status_code": status.status_code}
        if step == "mark_rejected" and status.rejection is not None:
            reason = _rejection_code(status)
            data["rejection_code"] = reason
        try:
            batch.apply(document, step, reason=reason, data=data, actor=actor)
        except TransitionRefused:
            logger.info("Status %s not applicable any more", status.status_code)
            break
    return document


def _work_item_sync(document: Document, *, actor: Any, page: StatusPage) -> None:
    """The work item rule after a status report, at the page's end (once per
    document, on its last state). Skipped where it would find nothing to do: no
    active item and none called for."""
    if (
        page.with_items is not None
        and document.pk not in page.with_items
        and work_item_category_for(document) is None
    ):
        page.to_sync.pop(document.pk, None)
        return
    page.to_sync[document.pk] = (document, actor)


def page_posted_record(
    transmission: Transmission, status: ConnectStatus, page: StatusPage
) -> None:
    """Record on the page that Connect holds the transmission (its GUID, once), and
    audit which payload version went where."""
    now = page.now
    transmission.state = TransmissionState.POSTED
    transmission.external_id = status.guid
    transmission.posted_at = transmission.posted_at or now
    transmission.next_attempt_at = None
    transmission.next_poll_at = now + timedelta(
        seconds=settings.DOCFLOW_POLL_FIRST_SECONDS
    )
    transmission.last_error_class = ""
    page.transmissions[transmission.pk] = transmission  # written at the page's end
    page.transmission_fields.update(dict.fromkeys(TRANSMISSION_POSTED_FIELDS))
    payload = transmission.payload_version
    page.batch.audit(
        action="transmission.posted",
        target_type="document",
        target_id=str(transmission.document.public_id),
        data={
            "transmission": str(transmission.public_id),
            "destination": transmission.destination_ods_code,
            "payload_version": str(payload.public_id),
            "sha256": payload.sha256,
            "guid": status.guid,
            "idempotency_key": transmission.idempotency_key,
        },
    )


def transmission_record_posted(
    *, transmission_id: int, status: ConnectStatus, actor: Any = None
) -> Transmission:
    """Connect holds the document: record its GUID once, audit which payload version
    went where, and apply the status Connect reported."""
    [transmission] = transmissions_record_posted(
        posted=[(transmission_id, status)], actor=actor
    )
    return transmission


@transaction.atomic
def transmissions_record_posted(
    *, posted: Sequence[tuple[int, ConnectStatus]], actor: Any = None
) -> list[Transmission]:
    """Connect holds these documents: for each, record its GUID once, audit which
    payload version went where, and apply the status Connect reported, as one page
    (one lock of the transmissions, one of the documents, one batch of writes)."""
    statuses = dict(posted)
    transmissions = list(
        Transmission.objects.select_for_update(of=("self",))
        .select_related("payload_version")
        .filter(pk__in=list(statuses))
        .order_by("pk")
    )
    # The documents are read as they are now, under their locks (the changes feed
    # may have moved them on while we waited for the transmissions).
    page = StatusPage(with_items=page_documents_lock(transmissions))
    for transmission in transmissions:
        status = statuses[transmission.pk]
        if transmission.state == TransmissionState.PENDING:
            page_posted_record(transmission, status, page)
        page_status_apply(
            transmission, status, actor=actor, profiles=page.profiles, page=page
        )
    page_finish(page)
    return transmissions


def page_documents_lock(transmissions) -> set[int]:
    """Lock the page's documents (in id order, before any transition does), read
    them as they are now onto their transmissions, and say which have an active
    work item: casework takes the document lock before it touches an item, so the
    answer holds until the page commits."""
    by_document: dict[int, list[Transmission]] = defaultdict(list)
    for transmission in transmissions:
        by_document[transmission.document_id].append(transmission)
    if not by_document:
        return set()
    for document in (
        Document.objects.select_for_update(of=("self",))
        .select_related("destination")
        .filter(pk__in=by_document)
        .order_by("pk")
    ):
        for transmission in by_document[document.pk]:
            transmission.document = document
    return set(
        WorkItem.objects.filter(
            document_id__in=list(by_document), status__in=ACTIVE_STATUSES
        )
        .order_by()
        .values_list("document_id", flat=True)
    )


def page_finish(page: StatusPage) -> None:
    """The page's deferred writes: every transmission row it changed (in one or two
    statements), its transitions and events in one batch (the events last but for
    what follows, since they hold the audit chain until commit), the work item
    rule where it has something to do, split parents, then one surge check per
    organisation that saw a system error."""
    _transmissions_write(
        list(page.transmissions.values()), tuple(page.transmission_fields)
    )
    page.batch.flush()
    for document, actor in page.to_sync.values():
        work_item_follow(document=document, actor=actor)
    for parent_id, actor in sorted(page.parents.items()):
        split_parent_roll_up(parent_id, actor)
    for organisation in SendingOrganisation.objects.filter(pk__in=page.surges):
        surge_check(sending_organisation=organisation)


def _transmissions_write(changed: list[Transmission], fields: tuple[str, ...]) -> None:
    """Write the ``fields`` a page changed on its transmission rows: the columns all
    of them share in one UPDATE, and only the columns that differ by row (the GUID
    each post returned) through ``bulk_update``, whose CASE per row and column
    costs far more."""
    if len(changed) == 1:
        changed[0].save(update_fields=fields)
        return
    if not changed:
        return
    now = timezone.now()
    for transmission in changed:
        transmission.updated_at = now
    varying = [
        name
        for name in fields
        if len({getattr(transmission, name) for transmission in changed}) > 1
    ]
    shared = {name: getattr(changed[0], name) for name in fields if name not in varying}
    Transmission.objects.filter(pk__in=[t.pk for t in changed]).update(**shared)
    if varying:
        Transmission.objects.bulk_update(changed, varying)
