"""The isolated conversion step: HTML and images become PDF outside every
preparation batch, in a child process with hard limits, at most
``DOCFLOW_CONVERSION_SLOTS`` at a time across every cluster.

A batch hands a document here by creating its :class:`ConversionJob`. Then:

1. :func:`conversion_claim` (a short transaction): the job is taken if nobody
   holds a live lease on it, and one :class:`ConversionSlot` is taken by
   compare-and-set on (job, lease). No slot free: nothing is taken and the caller
   returns at once, so a waiting conversion never occupies a worker; whoever
   frees a slot wakes the oldest waiting jobs (:func:`conversions_waiting`). The
   attempt is counted here, before anything can crash.
2. :func:`conversion_execute` (no transaction, no lock): the payload is read and
   converted by ``docflow.conversion.isolated`` under the destination profile's
   limits (wall time, CPU time, memory, pages).
3. :func:`document_prepare_converted` (one transaction): the document is prepared
   with that outcome: ready, or held once (``CONVERSION_LIMIT`` naming the limit,
   ``CONVERSION_FAILED``, ``CONTENT_LOST``); the job goes and the slot is freed.

A child that dies without an answer is tried again while attempts remain; a
worker that dies mid-conversion leaves a lease that runs out
(``DOCFLOW_CONVERSION_LEASE_SECONDS``), after which the job is claimed again.
Past ``DOCFLOW_CONVERSION_MAX_ATTEMPTS`` the document is held (``attempts``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from docflow.conversion.isolated import ConversionOutcome, conversion_run_isolated
from docflow.models import (
    ConversionJob,
    ConversionSlot,
    Document,
    DocumentStatus,
)
from docflow.preparation.batch import document_prepare_locked
from docflow.preparation.checks import (
    conversion_limits_for,
    media_type_sniffed,
    needs_conversion,
    payload_read,
)
from docflow.preparation.run import Held, Lookups, Prepared
from docflow.selectors import document_current_payload


@dataclass(frozen=True)
class ConversionClaim:
    """One worker's hold on one document's conversion: its job, its slot, which
    attempt this is, and until when the hold lasts."""

    job_id: int
    document_id: int
    slot_id: int
    attempts: int
    lease_until: datetime.datetime


def _slots_ensure(count: int) -> None:
    existing = ConversionSlot.objects.filter(number__lte=count).count()
    if existing < count:
        ConversionSlot.objects.bulk_create(
            [ConversionSlot(number=n) for n in range(1, count + 1)],
            ignore_conflicts=True,
        )


def _slot_take(
    *, job: ConversionJob, now: datetime.datetime, lease_until: datetime.datetime
) -> ConversionSlot | None:
    count = settings.DOCFLOW_CONVERSION_SLOTS
    _slots_ensure(count)
    free = ConversionSlot.objects.filter(number__lte=count).filter(
        Q(job__isnull=True) | Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    for slot in free.order_by("number"):
        taken = ConversionSlot.objects.filter(
            pk=slot.pk, job_id=slot.job_id, lease_until=slot.lease_until
        ).update(job=job, lease_until=lease_until)
        if taken == 1:
            return slot
    return None


@transaction.atomic
def conversion_claim(*, document_id: int) -> ConversionClaim | None:
    """Take a submitted document's conversion: its job must have no live lease and
    a slot must be free, both taken by compare-and-set; the attempt is counted.
    None when there is nothing to convert, someone else converts it, or every
    slot is busy (the job waits, occupying no worker)."""
    now = timezone.now()
    job = (
        ConversionJob.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("document")
        .filter(document_id=document_id, document__status=DocumentStatus.SUBMITTED)
        .first()
    )
    if job is None:
        # A document cancelled while it waited needs no conversion any more.
        ConversionJob.objects.filter(document_id=document_id).exclude(
            document__status=DocumentStatus.SUBMITTED
        ).delete()
        return None
    if job.lease_until is not None and job.lease_until > now:
        return None
    lease_until = now + datetime.timedelta(
        seconds=settings.DOCFLOW_CONVERSION_LEASE_SECONDS
    )
    slot = _slot_take(job=job, now=now, lease_until=lease_until)
    if slot is None:
        return None
    job.attempts += 1
    job.lease_until = lease_until
    job.save(update_fields=["attempts", "lease_until"])
    audit_record(
        action="document.conversion_started",
        target_type="document",
        target_id=str(job.document.public_id),
        data={"attempt": job.attempts, "slot": slot.number},
    )
    return ConversionClaim(
        job_id=job.pk,
        document_id=document_id,
        slot_id=slot.pk,
        attempts=job.attempts,
        lease_until=lease_until,
    )


def conversion_slot_release(*, claim: ConversionClaim) -> None:
    """Free the claim's slot, unless another worker has taken it since (a lease
    that ran out), and the job's lease if it is still this claim's (a step that
    failed unexpectedly leaves its job waiting); safe to call twice."""
    ConversionSlot.objects.filter(pk=claim.slot_id, job_id=claim.job_id).update(
        job=None, lease_until=None
    )
    ConversionJob.objects.filter(pk=claim.job_id, lease_until=claim.lease_until).update(
        lease_until=None
    )


def conversion_execute(
    *, claim: ConversionClaim
) -> tuple[ConversionOutcome | None, str]:
    """Convert the claimed document's current payload in a child process under
    its destination profile's limits; outside any transaction. Returns the outcome
    and the SHA-256 of what was converted, or (None, "") when there is nothing this
    step can convert (preparation then holds the document for its own reason)."""
    document = Document.objects.get(pk=claim.document_id)
    version = document_current_payload(document=document)
    lookups = Lookups()
    organisation = lookups.organisation(document.destination_ods_code)
    if version is None or organisation is None or not organisation.is_active:
        return None, ""
    profile = lookups.profile(organisation.endpoint_type or "")
    if profile is None:
        return None, ""
    if claim.attempts > settings.DOCFLOW_CONVERSION_MAX_ATTEMPTS:
        return (
            ConversionOutcome(crashed=f"no outcome after {claim.attempts - 1} tries"),
            version.sha256,
        )
    try:
        content = payload_read(version)
        media_type = media_type_sniffed(content, version)
    except Held:
        return None, ""
    if not needs_conversion(media_type, profile):
        return None, ""
    outcome = conversion_run_isolated(
        content, media_type=media_type, limits=conversion_limits_for(profile)
    )
    return outcome, version.sha256


@transaction.atomic
def document_prepare_converted(
    *,
    claim: ConversionClaim,
    outcome: ConversionOutcome | None,
    source_sha256: str,
    actor: Any = None,
) -> Prepared:
    """Prepare the claimed document with its conversion's outcome: ready or held,
    once; its job goes and its slot is freed with that change. A child that died
    without an answer, with attempts left, sends the job back to wait."""
    if (
        outcome is not None
        and outcome.crashed
        and claim.attempts < settings.DOCFLOW_CONVERSION_MAX_ATTEMPTS
    ):
        document = Document.objects.get(pk=claim.document_id)
        ConversionJob.objects.filter(pk=claim.job_id).update(lease_until=None)
        conversion_slot_release(claim=claim)
        audit_record(
            action="document.conversion_interrupted",
            target_type="document",
            target_id=str(document.public_id),
            data={"attempt": claim.attempts, "child_ended": outcome.crashed},
            actor=actor,
        )
        return Prepared(document=document, sendable=[], converting=True)
    prepared = document_prepare_locked(
        document_id=claim.document_id,
        actor=actor,
        conversion=outcome,
        conversion_source=source_sha256,
    )
    if prepared.converting:
        ConversionJob.objects.filter(pk=claim.job_id).update(lease_until=None)
    else:
        ConversionJob.objects.filter(pk=claim.job_id).delete()
    conversion_slot_release(claim=claim)
    return prepared


def conversions_waiting(*, limit: int) -> list[int]:
    """Documents whose conversion waits for a slot (no lease, or one that ran out
    because its worker died), oldest first."""
    if limit <= 0:
        return []
    now = timezone.now()
    return list(
        ConversionJob.objects.filter(document__status=DocumentStatus.SUBMITTED)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("created_at", "id")
        .values_list("document_id", flat=True)[:limit]
    )


def conversion_slots_free() -> int:
    """How many conversions could start now."""
    busy = ConversionSlot.objects.filter(
        number__lte=settings.DOCFLOW_CONVERSION_SLOTS,
        job__isnull=False,
        lease_until__gte=timezone.now(),
    ).count()
    return max(0, settings.DOCFLOW_CONVERSION_SLOTS - busy)


def document_has_conversion(*, document_id: int) -> bool:
    """Whether the document waits for (or is in) the isolated conversion step."""
    return ConversionJob.objects.filter(document_id=document_id).exists()


def document_convert(*, document_id: int, actor: Any = None) -> Prepared | None:
    """Claim, convert and prepare one document now (no work items, no sends: the
    engine's step in ``transmissions`` adds those); None when it cannot be claimed
    (nothing to convert, or no slot free)."""
    claim = conversion_claim(document_id=document_id)
    if claim is None:
        return None
    try:
        outcome, source = conversion_execute(claim=claim)
        return document_prepare_converted(
            claim=claim, outcome=outcome, source_sha256=source, actor=actor
        )
    finally:
        conversion_slot_release(claim=claim)


def document_prepare(*, document_id: int, actor: Any = None) -> Prepared:
    """Make a submitted document fit its destination profile, or hold it; once only.

    A document that is no longer ``submitted`` is returned unchanged with nothing
    to send, so a task delivered twice does no harm. Content that must be converted
    is converted first, in a bounded child process, when a conversion slot is free
    (call this outside a transaction, so the slot taken is seen by other workers);
    with none free the document is returned still submitted (``converting``).
    """
    with transaction.atomic():
        prepared = document_prepare_locked(document_id=document_id, actor=actor)
    if not prepared.converting:
        return prepared
    return document_convert(document_id=document_id, actor=actor) or prepared
