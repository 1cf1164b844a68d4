"""django-q2 entry points: take ids, call one service, safe to run twice.

Singletons (the tracker, the MESH inbox poll and handshake, the sweep of MESH
sends left unanswered, the re-check of destinations) run under a lease
(``docflow.leases``): one run at a time on any number of nodes; a run that finds
the lease held returns at once and says so."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from docflow.leases import singleton
from transmissions.channels.connect import directory
from transmissions.channels.mesh import mailboxes as mesh_mailboxes
from transmissions.channels.mesh import tracking as mesh_tracking
from transmissions.engine import settling as engine_settling
from transmissions.pipeline import clock, converting, sending, settling, tracker
from transmissions.pipeline import sweep as pipeline


def prepare_document(document_id: int) -> str:
    """Prepare a submitted document, with others waiting, and send them (no-op when
    it is no longer submitted and nothing else waits)."""
    return str(pipeline.documents_prepare_and_send(document_id=document_id))


def convert_document(document_id: int) -> str:
    """Convert a submitted document's HTML or image in a bounded child process when
    a conversion slot is free, prepare it and send it (no-op when it waits for a
    slot or is no longer submitted)."""
    return str(converting.document_convert_and_send(document_id=document_id))


def send_document(document_id: int) -> str:
    """Send one ready document (no-op unless it is ready and due)."""
    return sending.document_send(document_id=document_id).outcome


def settle_outcome_unknown(document_id: int) -> str:
    """Settle one document whose outcome is unknown, by idempotency key (over
    MESH: by the message's local id)."""
    return settling.outcome_unknown_settle(document_id=document_id)


def settle_expired_claim(document_id: int) -> str:
    """Settle one claim whose lease expired by its idempotency key (no-op while its
    worker still holds it)."""
    return settling.sending_claim_settle(document_id=document_id)


def dispatch_due() -> str:
    """Queue due work that nothing else has queued."""
    return str(pipeline.pipeline_dispatch_due())


def reconcile_sending() -> int:
    """The backstop behind the clock: queue the settling of expired claims, and
    move documents stuck in sending without a lease to outcome unknown."""
    queued = clock.claims_expired_queue(now=timezone.now())
    return queued + len(engine_settling.sending_stuck_mark_unknown())


@singleton("transmissions.reconcile_organisations")
def reconcile_organisations() -> str:
    """Re-check destinations in Connect's directory."""
    return str(directory.organisations_reconcile())


def track(seconds: float | None = None, wait: float | None = None) -> int:
    """Keep the clock (queue retries, circuit trials and expired claims as they
    come due) and apply Connect's statuses in rounds while anything is on its way;
    scheduled every minute, and a run hands over to its successor so neither has
    gaps. A scheduled run (no arguments) that finds another tracker at work stands
    by for DOCFLOW_TRACK_STANDBY_SECONDS, ready to take over if it dies."""
    return tracker.statuses_track(
        seconds=settings.DOCFLOW_TRACK_LOOP_SECONDS if seconds is None else seconds,
        wait=settings.DOCFLOW_TRACK_STANDBY_SECONDS if wait is None else wait,
    )


def resend_document(document_id: int) -> str:
    """Ask Connect to resend a document it holds (after casework requeued it); one
    last sent over MESH goes again as a new message."""
    return sending.document_resend(document_id=document_id).outcome


def resolve_rejection_at_connect(document_id: int, note: str) -> str:
    """Mark a rejection resolved at Connect and mirror it (nothing to tell Connect
    about a document last sent over MESH)."""
    return sending.rejection_resolve(document_id=document_id, note=note)


@singleton("transmissions.mesh_poll_inboxes")
def mesh_poll_inboxes() -> str:
    """Record and apply MESH reports and acknowledgements from every inbox, then
    track messages with no news for a while."""
    polls = mesh_tracking.mesh_round()
    return ", ".join(f"{box}: {poll.outcomes}" for box, poll in polls.items())


@singleton("transmissions.mesh_handshake")
def mesh_handshake() -> int:
    """Validate every MESH mailbox with MESH (daily)."""
    return mesh_mailboxes.mesh_mailboxes_handshake()


@singleton("transmissions.mesh_settle_unanswered")
def mesh_settle_unanswered() -> int:
    """MESH sends without both acknowledgements by the deadline become undelivered
    (hourly; the deadline is days)."""
    from transmissions.channels.mesh.conformance.acknowledgements import (
        mesh_unanswered_settle,
    )

    return len(mesh_unanswered_settle())
