"""Sending to Connect in batches: ready documents of the usual kind (Connect, a
first attempt, a destination checked within its TTL, no halt or pause) claimed in
one transaction, posted one after another and recorded in one more. The pipeline
(``pipeline.sending.documents_send``) picks the usual kind; anything else goes
through ``document_send`` alone. The destination check and the reading of a
failed POST are ``sending``'s, shared rather than restated.

Every claim of a batch carries a lease (``leases``) that the worker's heartbeat
renews while it posts the batch one document after another: a worker killed half
way leaves claims that expire within one lease and are settled by key at once."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import transaction

from docflow.models import Document, DocumentStatus, PayloadVersion
from docflow.payloads.store import payload_blobs_read_ahead
from docflow.selectors import documents_current_payloads
from docflow.transitions import DocumentTransitions
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.directory import destination_refusal
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
)
from transmissions.channels.connect.sending import (
    destination_refused,
    outbound_document,
    post_error_read,
)
from transmissions.channels.connect.tracking.statuses import (
    transmissions_record_posted,
)
from transmissions.engine.channel import RefusedFallback
from transmissions.engine.claims import transmission_first
from transmissions.engine.controls import ENDPOINT, connect_success_record
from transmissions.engine.leases import claims_kept, lease_expiry
from transmissions.engine.outcomes import send_failed
from transmissions.engine.send_rules import SendOutcome, SendResult
from transmissions.models import HaltKind, OutboundHalt, Transmission, TransmissionState


def connect_documents_send_together(
    *,
    documents: list[Document],
    halts: dict[int, list[OutboundHalt]],
    failing: dict[int, set[str]],
    when_refused: RefusedFallback | None = None,
    actor: Any = None,
) -> tuple[list[SendResult], list[int]]:
    """Send first attempts to Connect in batches, one per sending organisation
    (``halts`` and ``failing``: each organisation's open halts and failing
    destinations, read once by the caller): a destination checked within its TTL
    is claimed in one transaction, posted one after another and recorded in one
    more; a destination Connect does not serve is refused as for one send. Returns
    the outcomes, and the documents to send alone (a failed destination look-up)."""
    checks = _DestinationChecks()
    results: list[SendResult] = []
    alone: list[int] = []
    together: list[Document] = []
    for document in documents:
        verdict = checks.verdict(document)
        if verdict == _DestinationChecks.PASSES:
            together.append(document)
        elif verdict == _DestinationChecks.ALONE:
            alone.append(document.pk)
        else:
            results.append(
                destination_refused(
                    document=document, refusal=verdict, when_refused=when_refused
                )
            )
    by_organisation: dict[int, list[Document]] = defaultdict(list)
    for document in together:
        by_organisation[document.sending_organisation_id].append(document)
    for organisation_documents in by_organisation.values():
        circuit_open = any(
            halt.kind == HaltKind.CIRCUIT_OPEN
            for halt in halts[organisation_documents[0].sending_organisation_id]
        )
        results += _send_together(
            organisation_documents,
            circuit_open=circuit_open,
            failing=failing[organisation_documents[0].sending_organisation_id],
        )
    return results, alone


class _DestinationChecks:
    """``destination_refusal`` once per destination for a batch (a live look-up
    only where ours is older than the TTL): its refusal (DC02, DC03) applies to
    all the destination's documents; a failed look-up sends them alone, where the
    check is made again and acted on as for any single send."""

    PASSES = "passes"
    ALONE = "alone"

    def __init__(self) -> None:
        self.verdicts: dict[str, str] = {}

    def verdict(self, document: Document) -> str:
        code = document.destination_ods_code
        if code not in self.verdicts:
            try:
                client = connect_client_for(document.sending_organisation)
                refusal = destination_refusal(document, client)
            except ConnectError:
                refusal = self.ALONE
            self.verdicts[code] = refusal or self.PASSES
        return self.verdicts[code]


def _send_together(
    documents: list[Document], *, circuit_open: bool, failing: set[str]
) -> list[SendResult]:
    """Claim, post and record documents of one sending organisation (``failing``:
    the destinations, or the endpoint, with failures counted when we looked)."""
    organisation = documents[0].sending_organisation
    claimed, results = _claim_many([document.pk for document in documents])
    if not claimed:
        return results
    client = connect_client_for(organisation)
    posted: list[tuple[int, Any]] = []
    reached: set[str] = set()
    try:
        with claims_kept([transmission.pk for _, transmission, _ in claimed]):
            _post_each(claimed, organisation, client, posted, reached, results)
    finally:
        # Even when something unexpected stops the loop, what Connect holds is
        # recorded (anything claimed and not posted is settled when its lease
        # expires).
        if posted:
            connect_success_record(
                sending_organisation_id=organisation.pk,
                destination_ods_codes=sorted(reached),
                circuit_open=circuit_open,
                failures_counted=bool(failing & (reached | {ENDPOINT})),
            )
            transmissions_record_posted(posted=posted)
    return results


def _post_each(claimed, organisation, client, posted, reached, results) -> None:
    """Post claimed documents one after another, collecting what Connect holds in
    ``posted`` (and the destinations reached) and each outcome in ``results``.
    Their blobs are read ahead together, not one SELECT per document."""
    halted: ConnectError | None = None
    stored = payload_blobs_read_ahead(payload for _, _, payload in claimed)
    for document, transmission, payload in claimed:
        document.sending_organisation = organisation
        if halted is not None:
            # The token was refused a moment ago: back to ready, unposted.
            send_failed(document, transmission, halted, count_attempt=False)
            results.append(
                SendResult(SendOutcome.HALTED, document.pk, HaltKind.TOKEN_FAILURE)
            )
            continue
        try:
            status, _created = client.post_document(
                idempotency_key=transmission.idempotency_key,
                document=outbound_document(
                    document, payload, stored.pop(payload.storage_name, None)
                ),
            )
        except ConnectError as exc:
            results.append(post_error_read(document, transmission, exc))
            if isinstance(exc, (ConnectAuthFailed, ConnectConfigurationError)):
                halted = exc
            continue
        posted.append((transmission.pk, status))
        reached.add(document.destination_ods_code)
        results.append(SendResult(SendOutcome.POSTED, document.pk, status.guid))


@transaction.atomic
def _claim_many(
    document_ids: list[int],
) -> tuple[list[tuple[Document, Transmission, PayloadVersion]], list[SendResult]]:
    """Claim ``ready`` -> ``sending`` for several documents under their row locks,
    each with a new transmission (first attempts only: a retry goes alone)."""
    batch = DocumentTransitions()
    locked = batch.lock(document_ids)
    pending = set(
        Transmission.objects.filter(
            document_id__in=list(locked), state=TransmissionState.PENDING
        ).values_list("document_id", flat=True)
    )
    payloads = documents_current_payloads(document_ids=list(locked))
    results: list[SendResult] = []
    claimable: list[Document] = []
    for document_id in document_ids:
        document = locked.get(document_id)
        if (
            document is None
            or document.status != DocumentStatus.READY
            or document_id in pending
            or payloads.get(document_id) is None
        ):
            # Moved on, or retrying meanwhile: whoever did that carries it on.
            results.append(SendResult(SendOutcome.NOT_READY, document_id))
            continue
        claimable.append(document)
    lease = lease_expiry()
    transmissions = Transmission.objects.bulk_create(
        [
            transmission_first(
                document_id=document.pk,
                payload=payloads[document.pk],
                sending_organisation_id=document.sending_organisation_id,
                destination_ods_code=document.destination_ods_code,
                document_type=document.document_type,
                fields={"lease_expires_at": lease},
            )
            for document in claimable
        ]
    )
    claimed = []
    for document, transmission in zip(claimable, transmissions, strict=True):
        batch.apply(document, "claim_for_sending")
        transmission.document = document
        claimed.append((document, transmission, payloads[document.pk]))
    batch.flush()
    return claimed, results
