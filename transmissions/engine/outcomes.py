"""What a failed send means, the same for every channel.

Nothing reached the channel (``ChannelUnavailable``, a configuration the client
refused): back to ``ready`` with backoff, retried when due (``send_failed``; the
clock queues it at ``next_attempt_at``, the pipeline sweep is the backstop), or
held when the attempts are spent. The request may have arrived
(``ChannelOutcomeUnknown``): ``outcome_unknown``, settled by key, never resent
blindly (``send_outcome_unknown``). Refused for good: held with the channel's
code (``send_refused_hold``). Refused credentials: the organisation is halted
(``credentials_halt``). Destination not served: held before any send
(``send_hold_before``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from docflow.models import Document
from docflow.services import TransitionRefused
from transmissions.engine.controls import outbound_halt_open
from transmissions.engine.errors import ChannelError
from transmissions.engine.moves import document_move
from transmissions.engine.send_rules import SendOutcome, SendResult, send_retry_delay
from transmissions.models import HaltKind, Transmission, TransmissionState


def transmission_error_record(
    transmission: Transmission, exc: ChannelError, *, state: str | None = None
) -> None:
    """Record the failure's class (never its text) on the transmission, and its new
    state when it ends here."""
    transmission.last_error_class = exc.error_class[:32]
    fields = ["last_error_class", "updated_at"]
    if state:
        transmission.state = state
        fields.append("state")
    transmission.save(update_fields=fields)


@transaction.atomic
def send_outcome_unknown(
    document: Document, transmission: Transmission, exc: ChannelError
) -> SendResult:
    """The request may have reached the channel: never resend blindly, let the key
    settle it.

    While we waited for the answer the changes feed may already have matched our
    idempotency key and moved the document on: then the channel has it, and that
    stands.
    """
    try:
        document_move(
            document=document,
            transition="mark_outcome_unknown",
            reason="TIMEOUT_AFTER_SEND",
            data={"transmission": str(transmission.public_id)},
        )
    except TransitionRefused:
        return SendResult(
            SendOutcome.POSTED, document.pk, "recorded from the changes feed"
        )
    transmission_error_record(transmission, exc)
    return SendResult(SendOutcome.OUTCOME_UNKNOWN, document.pk)


def send_failed(
    document: Document,
    transmission: Transmission,
    exc: ChannelError,
    *,
    count_attempt: bool = True,
) -> SendResult:
    """Nothing reached the channel: back to ``ready`` with backoff (the clock queues
    the retry when it is due), or held when the attempts are spent.
    ``count_attempt=False``: refused before anything was sent (credentials)."""
    try:
        return _retry_or_hold(document, transmission, exc, count_attempt=count_attempt)
    except TransitionRefused:
        # The document moved on while we posted (the stuck-sending check took it
        # after a very slow failure): that state stands, and so does its settling.
        return SendResult(SendOutcome.NOT_READY, document.pk, "moved on meanwhile")


@transaction.atomic
def _retry_or_hold(
    document: Document,
    transmission: Transmission,
    exc: ChannelError,
    *,
    count_attempt: bool,
) -> SendResult:
    if count_attempt and transmission.attempts >= settings.DOCFLOW_SEND_MAX_ATTEMPTS:
        transmission_error_record(transmission, exc)
        document_move(
            document=document,
            transition="hold_after_send_attempt",
            reason="RETRIES_EXHAUSTED",
            data={
                "attempts": transmission.attempts,
                "last_error": exc.error_class,
                "transmission": str(transmission.public_id),
            },
        )
        return SendResult(SendOutcome.HELD, document.pk, "RETRIES_EXHAUSTED")
    if count_attempt:
        delay = send_retry_delay(
            attempts=transmission.attempts,
            retry_after=getattr(exc, "retry_after", None),
        )
        transmission.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    else:
        # Refused before anything was sent (credentials): the halt holds it, not a
        # backoff, and the attempt does not count towards the limit.
        delay = 0.0
        transmission.attempts = max(transmission.attempts - 1, 0)
        transmission.next_attempt_at = None
    transmission.last_error_class = exc.error_class[:32]
    transmission.lease_expires_at = None  # released: back in ready
    transmission.save(
        update_fields=[
            "attempts",
            "next_attempt_at",
            "last_error_class",
            "lease_expires_at",
            "updated_at",
        ]
    )
    document_move(
        document=document,
        transition="retry_later",
        reason=exc.error_class,
        data={
            "attempts": transmission.attempts,
            "retry_in_seconds": round(delay, 1),
            "transmission": str(transmission.public_id),
        },
    )
    return SendResult(SendOutcome.RETRY, document.pk, exc.error_class)


def credentials_halt(*, sending_organisation, error: ChannelError) -> None:
    """Stop the organisation's outbound (one TOKEN_FAILURE halt; opening it again
    is a no-op): the channel refused our credentials."""
    outbound_halt_open(
        kind=HaltKind.TOKEN_FAILURE,
        reason=str(error)[:255],
        sending_organisation=sending_organisation,
    )


def send_refused_hold(
    *,
    document: Document,
    transmission: Transmission,
    error: ChannelError,
    codes: list[str],
    data: dict | None = None,
) -> SendResult:
    """The channel refused the send for good: the transmission is abandoned and the
    document held with the channel's first code (all codes in the event)."""
    with transaction.atomic():
        transmission_error_record(
            transmission, error, state=TransmissionState.ABANDONED
        )
        document_move(
            document=document,
            transition="hold_after_send_attempt",
            reason=codes[0],
            data={
                "codes": codes,
                "transmission": str(transmission.public_id),
                **(data or {}),
            },
        )
    return SendResult(SendOutcome.HELD, document.pk, ",".join(codes))


def send_hold_before(
    *, document: Document, reason: str, data: dict, actor: Any = None
) -> SendResult:
    """Hold a ready document before anything is sent (its destination is not
    served, or the channel is not configured for it); one that moved on meanwhile
    is left as it is."""
    with transaction.atomic():
        try:
            document_move(
                document=document,
                transition="hold_before_send",
                reason=reason,
                data=data,
                actor=actor,
            )
        except TransitionRefused:
            return SendResult(SendOutcome.NOT_READY, document.pk)
    return SendResult(SendOutcome.HELD, document.pk, reason)
