"""Sending, for every channel: check, route, hand to the channel; and where a send
is retried.

``document_send`` checks a ready document may go now (``engine.send_rules``: not a
split parent, no halt on its organisation, no open circuit or pause for its
destination), asks the registry (``transmissions.channels``) which channel it
goes by, and hands it to that channel's send. ``documents_send`` does the same for
several, batching first attempts of the usual kind through the default channel.

Where is a send retried? One send posts at most once. A failure that reached no
one goes back to ``ready`` with ``next_attempt_at`` (``engine.outcomes``:
exponential backoff with full jitter, never sooner than the channel's
Retry-After); the clock (``pipeline.clock``) queues it when it is due, and the
pipeline sweep (``pipeline.sweep.pipeline_dispatch_due``) queues whatever is due
and was not queued. A send that may have arrived is never retried: it is settled
by its key (``pipeline.settling``), then sent again only if it proved absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from docflow.models import Document
from transmissions.channels.registry import (
    DEFAULT,
    BatchRouting,
    channel_sent_last,
    document_route,
    route_when_refused,
)
from transmissions.engine.controls import (
    ENDPOINT,
    destinations_failing,
    outbound_halts_open,
)
from transmissions.engine.send_rules import (
    SendOutcome,
    SendResult,
    document_not_sendable_now,
)
from transmissions.models import Transmission, TransmissionState
from transmissions.queue import SEND, enqueue_on_commit

__all__ = ["SendOutcome", "SendResult", "document_send", "documents_send"]


def document_send(*, document_id: int, actor: Any = None) -> SendResult:
    """Send one ready document by the channel it goes by, at most once per claim
    (no-op unless it is ready, due and not halted or paused)."""
    document = Document.objects.select_related(
        "sending_organisation", "destination"
    ).get(pk=document_id)
    halts = outbound_halts_open(
        sending_organisation_id=document.sending_organisation_id
    )
    stopped = document_not_sendable_now(document, halts=halts)
    if stopped is not None:
        return stopped
    channel, route = document_route(document=document)
    return channel.document_send(
        document=document,
        route=route,
        halts=halts,
        actor=actor,
        when_refused=_elsewhere(actor),
    )


def _elsewhere(actor: Any):
    """The fallback a channel calls when it refuses a destination: another channel
    whose rule takes the document (MESH for DC02/DC03), or None to hold it."""

    def when_refused(document: Document, refusal: str) -> SendResult | None:
        found = route_when_refused(document=document, refusal=refusal)
        if found is None:
            return None
        channel, route = found
        return channel.document_send(
            document=document,
            route=route,
            halts=[],
            actor=actor,
            when_refused=lambda _document, _refusal: None,
        )

    return when_refused


def documents_send(
    *, document_ids: Sequence[int], actor: Any = None
) -> list[SendResult]:
    """Send several ready documents. The usual case (the default channel, a first
    attempt, no halt or pause) goes to the default channel's batch send; a
    document to a destination that is failing now (a failure counted, or its
    circuit open) goes in a task of its own, so a flaky practice's slow or failed
    POSTs never hold up the batch; any other document goes through
    ``document_send`` alone, after the batch."""
    documents = list(
        Document.objects.select_related("sending_organisation", "destination")
        .filter(pk__in=list(document_ids))
        .order_by("pk")
    )
    retrying = set(
        Transmission.objects.filter(
            document_id__in=[d.pk for d in documents], state=TransmissionState.PENDING
        ).values_list("document_id", flat=True)
    )
    halts: dict[int, list] = {}
    failing: dict[int, set[str]] = {}
    routing = BatchRouting()
    results: list[SendResult] = []
    alone: list[int] = []
    batch: list[Document] = []
    for document in documents:
        organisation_id = document.sending_organisation_id
        if organisation_id not in halts:
            halts[organisation_id] = outbound_halts_open(
                sending_organisation_id=organisation_id
            )
            failing[organisation_id] = destinations_failing(
                sending_organisation_id=organisation_id, halts=halts[organisation_id]
            )
        stopped = document_not_sendable_now(document, halts=halts[organisation_id])
        if stopped is not None:
            results.append(stopped)
            continue
        if document.destination_ods_code in failing[organisation_id] - {ENDPOINT}:
            enqueue_on_commit(SEND, document.pk)
            results.append(SendResult(SendOutcome.QUEUED, document.pk))
            continue
        if (
            document.pk in retrying
            or document.destination is None
            or routing.may_go_elsewhere(document)
        ):
            alone.append(document.pk)
            continue
        batch.append(document)
    if batch:
        sent, also_alone = DEFAULT.documents_send_together(
            documents=batch,
            halts=halts,
            failing=failing,
            when_refused=_elsewhere(actor),
            actor=actor,
        )
        results += sent
        alone += also_alone
    for document_id in alone:
        results.append(document_send(document_id=document_id, actor=actor))
    return results


def document_resend(*, document_id: int, actor: Any = None) -> SendResult:
    """Send again a document casework requeued: the channel it last reached asks
    for a resend of what it holds (Connect), or, for a channel without one (MESH),
    it goes again as a new message through ``document_send``."""
    channel = channel_sent_last(document_id=document_id)
    if channel.resends:
        return channel.document_resend(document_id=document_id, actor=actor)
    return document_send(document_id=document_id, actor=actor)


def rejection_resolve(*, document_id: int, note: str, actor: Any = None) -> str:
    """Tell the channel the document last reached that its rejection was resolved,
    and mirror its answer (a channel with nothing to tell says so)."""
    channel = channel_sent_last(document_id=document_id)
    return channel.rejection_resolve(document_id=document_id, note=note, actor=actor)
