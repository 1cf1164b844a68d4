"""Our MESH inboxes: reports from MESH and acknowledgements from practices.

Each message is downloaded, recorded and applied in one transaction, and only
acknowledged in MESH (which removes it) once that has committed: a crash in between
leaves it in the inbox, and the next poll finds it recorded and only acknowledges
it. A poll pages through the whole inbox (MESH lists at most 500 ids a request).
Messages that are neither reports nor acknowledgements are recorded once and then
acknowledged or left for whoever they are for (DOCFLOW_MESH_NOT_OURS); either way
they never hide what comes after them. An answer that cannot be applied
(unreadable, unmatched, or from a mailbox the document was not sent to) is kept in
quarantine before it is acknowledged (``transmissions.channels.mesh.conformance``).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from docflow.models import Channel, DocumentStatus
from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.client import InboxMessage, MeshMailboxClient
from transmissions.channels.mesh.conformance.acknowledgements import (
    answer_from_recipient,
    mesh_response_apply,
)
from transmissions.channels.mesh.conformance.quarantine import mesh_answer_quarantine
from transmissions.channels.mesh.connections import mesh_client_for, mesh_setting
from transmissions.channels.mesh.errors import (
    MeshAuthFailed,
    MeshChannelError,
    MeshMalformedRead,
    MeshNotFound,
)
from transmissions.channels.mesh.halts import mesh_credentials_halt
from transmissions.channels.mesh.outcomes import (
    NDR_REASON,
    NDR_STATUS_CODE,
    mesh_transmission_apply,
)
from transmissions.models import (
    MeshInboxMessage,
    MeshInboxOutcome,
    MeshMailbox,
    MeshQuarantineKind,
    Transmission,
)

logger = logging.getLogger(__name__)
S = DocumentStatus
ACK_SUFFIX = "_ACK"


@dataclass
class InboxPoll:
    """What one poll of one inbox did, by outcome."""

    outcomes: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0
    pages: int = 0
    credentials_refused: bool = False

    def count(self, outcome: str) -> None:
        key = str(outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


def _transmission_for_report(
    mailbox: MeshMailbox, message: InboxMessage
) -> Transmission | None:
    ours = Transmission.objects.filter(
        channel=Channel.MESH, sending_organisation_id=mailbox.sending_organisation_id
    )
    if message.linked_message_id:
        found = ours.filter(external_id=message.linked_message_id).first()
        if found is not None:
            return found
    if message.local_id:
        return ours.filter(idempotency_key=message.local_id).first()
    return None


def _transmission_for_response(
    mailbox: MeshMailbox, response: itk3.Itk3Response
) -> Transmission | None:
    try:
        public_id = uuid.UUID(response.response_to)
    except ValueError:
        return None
    return (
        Transmission.objects.select_for_update(of=("self",))
        .filter(
            public_id=public_id,
            channel=Channel.MESH,
            sending_organisation_id=mailbox.sending_organisation_id,
        )
        .first()
    )


def _not_ours_acknowledged() -> bool:
    return str(mesh_setting("NOT_OURS", "acknowledge")).lower() != "keep"


def _apply(mailbox: MeshMailbox, message: InboxMessage) -> tuple[str, dict]:
    """Apply one message (inside the recording transaction): its outcome and the
    fields to record with it."""
    if message.is_report:
        record = {
            "linked_message_id": message.linked_message_id[:64],
            "status_code": message.status_code[:32],
        }
        if message.status_success:
            return MeshInboxOutcome.STALE, record
        transmission = _transmission_for_report(mailbox, message)
        if transmission is None:
            mesh_answer_quarantine(
                mailbox=mailbox,
                message=message,
                kind=MeshQuarantineKind.UNMATCHED,
                problem=f"MESH report {message.status_code} names no send of ours",
                referenced_id=message.linked_message_id or message.local_id,
                response_code=message.status_code,
            )
            return MeshInboxOutcome.UNMATCHED, record
        record["transmission"] = transmission
        if message.status_code == NDR_STATUS_CODE:
            target, reason, status = S.UNDELIVERED, NDR_REASON, "undeliverable"
        else:
            target = S.SYSTEM_ERROR
            reason, status = f"MESH-{message.status_code or 'ERROR'}", "error"
        changed = mesh_transmission_apply(
            transmission_id=transmission.pk,
            target=target,
            reason=reason[:64],
            mesh_status=status,
            message_id=message.linked_message_id or transmission.external_id,
            data={
                "report": message.message_id,
                "mesh_status_code": message.status_code,
                "mesh_status_event": message.status_event,
            },
        )
        return (MeshInboxOutcome.APPLIED if changed else MeshInboxOutcome.STALE), record
    if not message.workflow_id.upper().endswith(ACK_SUFFIX):
        return MeshInboxOutcome.NOT_OURS, {}
    try:
        response = itk3.parse_response(message.content)
    except itk3.Itk3Unreadable as exc:
        mesh_answer_quarantine(
            mailbox=mailbox,
            message=message,
            kind=MeshQuarantineKind.UNREADABLE,
            problem=str(exc),
        )
        return MeshInboxOutcome.UNREADABLE, {}
    record = {"response_code": response.code[:16]}
    transmission = _transmission_for_response(mailbox, response)
    if transmission is None:
        mesh_answer_quarantine(
            mailbox=mailbox,
            message=message,
            kind=MeshQuarantineKind.UNMATCHED,
            problem="names no send of ours",
            referenced_id=response.response_to,
            response_code=response.code,
        )
        return MeshInboxOutcome.UNMATCHED, record
    if not answer_from_recipient(transmission=transmission, sender=message.sender):
        # Another organisation's mailbox cannot accept or reject our document.
        mesh_answer_quarantine(
            mailbox=mailbox,
            message=message,
            kind=MeshQuarantineKind.SUSPICIOUS,
            problem="from a mailbox the document was not sent to",
            referenced_id=response.response_to,
            response_code=response.code,
            transmission=transmission,
        )
        return MeshInboxOutcome.SUSPICIOUS, record
    record["transmission"] = transmission
    _decision, changed = mesh_response_apply(
        transmission=transmission,
        response=response,
        acknowledgement_id=message.message_id,
        from_mailbox=message.sender,
    )
    if not changed and not response.is_positive:
        # A practice's refusal that came too late to change anything still needs
        # a person to see it: it is recorded, and said out loud here.
        logger.warning(
            "ITK3 code %s for transmission %s changed nothing (already settled)",
            response.code,
            transmission.public_id,
        )
    return (MeshInboxOutcome.APPLIED if changed else MeshInboxOutcome.STALE), record


def mesh_inbox_message_record(
    *, mailbox: MeshMailbox, message: InboxMessage
) -> MeshInboxMessage:
    """Record one inbox message and apply what it says, in one transaction; a
    message recorded before is returned as it was (applied once only)."""
    try:
        with transaction.atomic():
            outcome, record = _apply(mailbox, message)
            return MeshInboxMessage.objects.create(
                mailbox=mailbox,
                message_id=message.message_id,
                message_type=message.message_type[:16],
                workflow_id=message.workflow_id[:64],
                sender_mailbox=message.sender[:20],
                outcome=outcome,
                **record,
            )
    except IntegrityError:
        # Another poller recorded it first; its transaction applied it.
        return MeshInboxMessage.objects.get(message_id=message.message_id)


def _acknowledge(client: MeshMailboxClient, message_id: str) -> bool:
    try:
        client.acknowledge(message_id)
    except MeshAuthFailed:
        raise
    except MeshChannelError as exc:
        logger.warning("Acknowledging %s failed (%s)", message_id, exc.error_class)
        return False
    MeshInboxMessage.objects.filter(message_id=message_id).update(
        acknowledged_at=timezone.now()
    )
    return True


def mesh_inbox_poll(*, mailbox_id: int, limit: int = 500) -> InboxPoll:
    """Download, record and apply everything waiting in one mailbox's inbox, page
    after page until it is empty (within DOCFLOW_MESH_POLL_BUDGET_SECONDS), and
    acknowledge each message once its record has committed. Refused credentials
    stop the poll and halt the organisation once (not a failure per message)."""
    if connection.in_atomic_block:
        raise RuntimeError("Poll outside a transaction: acknowledging waits for it")
    mailbox = MeshMailbox.objects.get(pk=mailbox_id)
    result = InboxPoll()
    try:
        _poll(mailbox, result, limit=limit)
    except MeshAuthFailed as exc:
        mesh_credentials_halt(mailbox=mailbox, error=exc)
        result.credentials_refused = True
    return result


def _settles(outcome: str) -> bool:
    """Whether a recorded message is acknowledged (removed from the inbox)."""
    return outcome != MeshInboxOutcome.NOT_OURS or _not_ours_acknowledged()


def _poll(mailbox: MeshMailbox, result: InboxPoll, *, limit: int) -> None:
    budget = float(mesh_setting("POLL_BUDGET_SECONDS", 240))
    stop_at = time.monotonic() + budget
    with mesh_client_for(mailbox) as client:
        next_link: str | None = None
        while True:
            ids, next_link = client.inbox_page(page_size=limit, next_link=next_link)
            if not _poll_page(client, mailbox, result, ids):
                return
            result.pages += 1
            if not next_link:
                return
            if time.monotonic() > stop_at:
                # The rest waits for the next poll, a few minutes away.
                logger.warning(
                    "MESH inbox %s: poll budget spent, more pages waiting",
                    mailbox.mailbox_id,
                )
                return


def _poll_page(
    client: MeshMailboxClient,
    mailbox: MeshMailbox,
    result: InboxPoll,
    ids: list[str],
) -> bool:
    """Handle one page of ids; False when MESH stopped answering."""
    known = dict(
        MeshInboxMessage.objects.filter(message_id__in=ids).values_list(
            "message_id", "outcome"
        )
    )
    for message_id in ids:
        if message_id in known:
            # Recorded by an earlier poll whose acknowledgement was lost (or a
            # message of another workflow left for its owner).
            if _settles(known[message_id]):
                result.acknowledged += _acknowledge(client, message_id)
            continue
        try:
            message = client.retrieve(message_id)
        except MeshNotFound:
            continue  # expired or taken meanwhile
        except MeshAuthFailed:
            raise
        except MeshMalformedRead as exc:
            # This message's answer is unreadable: the others are not held
            # up behind it, and it is asked for again on the next poll.
            logger.warning("MESH message %s unreadable: %s", message_id, exc)
            continue
        except MeshChannelError as exc:
            logger.warning("MESH inbox unavailable (%s)", exc.error_class)
            return False
        recorded = mesh_inbox_message_record(mailbox=mailbox, message=message)
        result.count(recorded.outcome)
        if _settles(recorded.outcome):
            result.acknowledged += _acknowledge(client, message_id)
    return True


def mesh_inboxes_poll() -> dict[str, InboxPoll]:
    """Poll every active mailbox's inbox; one failing mailbox does not stop the rest."""
    polls = {}
    for mailbox in MeshMailbox.objects.filter(is_active=True):
        try:
            polls[mailbox.mailbox_id] = mesh_inbox_poll(mailbox_id=mailbox.pk)
        except MeshChannelError as exc:
            logger.warning(
                "MESH inbox %s not polled (%s)", mailbox.mailbox_id, exc.error_class
            )
    return polls
