"""Sends of payload versions over a channel, what came back, and outbound controls."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from docflow.models import Channel


class TransmissionState(models.TextChoices):
    # Created when a document is claimed; the POST may not have reached Connect yet.
    # Retries and settling by idempotency key reuse this row and its key.
    PENDING = "pending", "Not yet confirmed by Connect"
    POSTED = "posted", "Held by Connect, being tracked"
    FINAL = "final", "Tracking finished"
    ABANDONED = "abandoned", "Never reached Connect; the document was held"


class Transmission(models.Model):
    """One send of one payload version over one channel to one destination."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    document = models.ForeignKey(
        "docflow.Document", on_delete=models.PROTECT, related_name="transmissions"
    )
    payload_version = models.ForeignKey(
        "docflow.PayloadVersion", on_delete=models.PROTECT, related_name="transmissions"
    )
    sending_organisation = models.ForeignKey(
        "docflow.SendingOrganisation",
        on_delete=models.PROTECT,
        related_name="transmissions",
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    destination_ods_code = models.CharField(max_length=10)
    # The document's type, copied when the transmission is made (a document's type
    # never changes): the surge watch counts the window's statuses by it from the
    # index alone, without joining documents.
    document_type = models.CharField(max_length=32, blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True)
    state = models.CharField(
        max_length=16,
        choices=TransmissionState.choices,
        default=TransmissionState.PENDING,
    )
    external_id = models.CharField(
        "Connect document GUID or MESH message id",
        max_length=64,
        blank=True,
        db_index=True,
    )
    status_code = models.PositiveIntegerField(null=True, blank=True)
    rejection_code = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    last_status_at = models.DateTimeField(null=True, blank=True)
    last_error_class = models.CharField(max_length=32, blank=True)
    # While the document is ``sending``: the claim is its worker's until then, and
    # the worker renews it while it is alive; past it, the clock settles the claim
    # by idempotency key (see ``transmissions.engine.leases``).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When the clock last queued this transmission's retry (so it queues it once).
    send_queued_at = models.DateTimeField(null=True, blank=True)
    # Why this channel was chosen (blank: the destination profile's default).
    route_reason = models.CharField(max_length=32, blank=True)
    # MESH only: the workflow sent under, the recipient mailbox, and MESH's or the
    # practice's latest word on the message (tracking status or ITK3 response).
    workflow_id = models.CharField(max_length=64, blank=True)
    recipient_mailbox = models.CharField(max_length=20, blank=True)
    mesh_status = models.CharField(max_length=32, blank=True)
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="resends"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One send in flight per document: retries reuse it and its key.
            models.UniqueConstraint(
                fields=["document"],
                condition=Q(state="pending"),
                name="transmission_one_pending_per_document",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_poll_at"]),
            models.Index(fields=["document", "state"]),
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["state", "lease_expires_at"]),
            # The operations watch's surge checks read the statuses of the last
            # window only (and, from the index alone, their codes, destinations
            # and document types): the cost follows the traffic, not the table.
            models.Index(
                fields=["last_status_at"],
                include=["status_code", "destination_ods_code", "document_type"],
                name="transmission_recent_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} transmission {self.public_id}"


class HaltKind(models.TextChoices):
    KILL_SWITCH = "kill_switch", "Paused by an operator"
    TOKEN_FAILURE = "token_failure", "Connect refused our credentials"
    CIRCUIT_OPEN = "circuit_open", "Repeated failures (circuit open)"
    SURGE = "surge", "Surge of system errors or on-hold statuses"
    DESTINATION_PAUSE = "destination_paused", "Destination paused"


class OutboundHalt(models.Model):
    """One reason outbound sending is stopped, for everyone, one sending org, one
    sending org's sends to one destination (a circuit per destination), or every
    send to one destination (a destination pause: no sending organisation, the
    destination's ODS code).

    While any halt is open for its scope nothing is posted; documents wait in `ready`.
    A circuit halt lets sends through again at `retry_at` (the clock queues a trial
    then) and closes itself on the next successful send; the others need an
    operator (kill switch command or admin action).
    """

    sending_organisation = models.ForeignKey(
        "docflow.SendingOrganisation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outbound_halts",
        help_text="Empty: every sending organisation.",
    )
    destination_ods_code = models.CharField(
        max_length=10,
        blank=True,
        default="",
        help_text=(
            "Circuit or destination pause: the one destination it stops; empty: "
            "every one."
        ),
    )
    kind = models.CharField(max_length=24, choices=HaltKind.choices)
    reason = models.CharField(max_length=255)
    opened_at = models.DateTimeField(auto_now_add=True)
    opened_by = models.CharField(max_length=150)
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="Circuit only: when one trial send may go."
    )
    trial_queued_at = models.DateTimeField(
        null=True, blank=True, help_text="Circuit only: when the clock queued a trial."
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    close_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sending_organisation", "kind", "destination_ods_code"],
                condition=Q(closed_at__isnull=True),
                name="outbound_halt_one_open_per_scope_and_kind",
            ),
            models.UniqueConstraint(
                fields=["kind", "destination_ods_code"],
                condition=Q(closed_at__isnull=True, sending_organisation__isnull=True),
                name="outbound_halt_one_open_global_per_kind_and_destination",
            ),
        ]

    def __str__(self) -> str:
        scope = self.sending_organisation or "all sending organisations"
        if self.destination_ods_code:
            scope = f"{scope} to {self.destination_ods_code}"
        return f"{self.get_kind_display()}: {scope}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class ConnectFailureCount(models.Model):
    """Consecutive retryable failures talking to Connect for one sending org's sends
    to one destination (empty: failures no destination was named for)."""

    sending_organisation = models.ForeignKey(
        "docflow.SendingOrganisation",
        on_delete=models.CASCADE,
        related_name="connect_failures",
    )
    destination_ods_code = models.CharField(max_length=10, blank=True, default="")
    consecutive = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sending_organisation", "destination_ods_code"],
                name="connect_failure_count_one_per_destination",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consecutive} consecutive failures"


class ChangesCursor(models.Model):
    """Where one sending org's read of Connect's changes feed got to."""

    sending_organisation = models.OneToOneField(
        "docflow.SendingOrganisation",
        on_delete=models.CASCADE,
        related_name="connect_changes_cursor",
    )
    cursor = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The feed's health: since when every read has failed (None while it reads) and
    # the last failure's kind (the error's own words, never an answer's content).
    # The operations watch raises an incident when it has failed for too long.
    failing_since = models.DateTimeField(null=True, blank=True)
    last_failure = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"changes cursor of {self.sending_organisation_id}"


DEFAULT_MESH_WORKFLOW = "GPCONNECT_SEND_DOCUMENT"


class MeshMailbox(models.Model):
    """One sending organisation's MESH mailbox and how documents go through it.

    The password and the shared key are named by reference (an environment variable
    or secret file, see ``docflow.configuration.read_secret``), never stored here.
    """

    sending_organisation = models.OneToOneField(
        "docflow.SendingOrganisation",
        on_delete=models.PROTECT,
        related_name="mesh_mailbox",
    )
    mailbox_id = models.CharField(max_length=20, unique=True)
    password_ref = models.CharField(
        max_length=100, help_text="Name of the secret holding the mailbox password."
    )
    shared_key_ref = models.CharField(
        max_length=100, help_text="Name of the secret holding the environment key."
    )
    base_url = models.URLField(
        blank=True, help_text="Empty: the DOCFLOW_MESH_BASE_URL setting."
    )
    client_cert_path = models.CharField(max_length=255, blank=True)
    client_key_path = models.CharField(max_length=255, blank=True)
    ca_cert_path = models.CharField(
        max_length=255, blank=True, help_text="Empty: the system's trusted CAs."
    )
    default_workflow_id = models.CharField(max_length=64, default=DEFAULT_MESH_WORKFLOW)
    workflow_ids = models.JSONField(
        default=dict,
        blank=True,
        help_text='Workflow per document type, e.g. {"discharge_summary": '
        '"TOC_FHIR_IP_DISCH"}; others use the default workflow.',
    )
    route_oversize_above_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Send over MESH instead of Connect when the payload is larger.",
    )
    route_when_not_connect_endpoint = models.BooleanField(
        default=False,
        help_text="Send over MESH when Connect does not know or does not serve "
        "the destination (DC02, DC03).",
    )
    is_active = models.BooleanField(default=True)
    last_handshake_at = models.DateTimeField(null=True, blank=True)
    last_handshake_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mailbox_id"]
        verbose_name = "MESH mailbox"

    def __str__(self) -> str:
        return f"MESH mailbox {self.mailbox_id}"

    def workflow_for(self, document_type: str) -> str:
        return str(self.workflow_ids.get(document_type) or self.default_workflow_id)


class MeshEndpointLookup(models.Model):
    """What MESH's directory said about one organisation and workflow, and when."""

    ods_code = models.CharField(max_length=10)
    workflow_id = models.CharField(max_length=64)
    mailbox_id = models.CharField(
        max_length=20, blank=True, help_text="Empty: no mailbox receives it."
    )
    looked_up_at = models.DateTimeField()

    class Meta:
        ordering = ["ods_code", "workflow_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["ods_code", "workflow_id"], name="mesh_lookup_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ods_code}/{self.workflow_id}: {self.mailbox_id or 'none'}"


class MeshInboxOutcome(models.TextChoices):
    APPLIED = "applied", "Applied to a transmission"
    STALE = "stale", "Matched, changed nothing"
    UNMATCHED = "unmatched", "No transmission of ours"
    UNREADABLE = "unreadable", "Could not be read"
    NOT_OURS = "not_ours", "Not a report or acknowledgement"
    SUSPICIOUS = "suspicious", "From a mailbox the document was not sent to"


class MeshInboxMessage(models.Model):
    """One message taken from a MESH inbox and what it did; acknowledged in MESH
    only after this row is committed, so a lost acknowledgement repeats nothing."""

    mailbox = models.ForeignKey(
        MeshMailbox, on_delete=models.PROTECT, related_name="inbox_messages"
    )
    message_id = models.CharField(max_length=64, unique=True)
    message_type = models.CharField(max_length=16)
    workflow_id = models.CharField(max_length=64, blank=True)
    linked_message_id = models.CharField(max_length=64, blank=True)
    status_code = models.CharField(max_length=32, blank=True)
    response_code = models.CharField(max_length=16, blank=True)
    sender_mailbox = models.CharField(max_length=20, blank=True)
    transmission = models.ForeignKey(
        Transmission,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mesh_inbox_messages",
    )
    outcome = models.CharField(max_length=16, choices=MeshInboxOutcome.choices)
    received_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"MESH {self.message_type} {self.message_id}"


class MeshQuarantineKind(models.TextChoices):
    UNREADABLE = "unreadable", "Could not be read as an ITK3 response"
    UNMATCHED = "unmatched", "Names no send of ours"
    SUSPICIOUS = "suspicious", "From a mailbox the document was not sent to"


class MeshQuarantineStatus(models.TextChoices):
    OPEN = "open", "Waiting for a person"
    MATCHED = "matched", "Matched by hand to a send"
    DISMISSED = "dismissed", "Looked at; nothing to do"


class MeshQuarantinedAnswer(models.Model):
    """One answer from our MESH inbox that changed nothing because it could not be
    read, named no send of ours, or came from the wrong mailbox, kept (its content
    encrypted at rest) so a person can match it by hand. It is an item of work in
    the infrastructure bucket until somebody matches or dismisses it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    mailbox = models.ForeignKey(
        MeshMailbox, on_delete=models.PROTECT, related_name="quarantined_answers"
    )
    kind = models.CharField(max_length=16, choices=MeshQuarantineKind.choices)
    status = models.CharField(
        max_length=16,
        choices=MeshQuarantineStatus.choices,
        default=MeshQuarantineStatus.OPEN,
    )
    message_id = models.CharField(max_length=64, unique=True)
    sender_mailbox = models.CharField(max_length=20, blank=True)
    local_id = models.CharField(max_length=300, blank=True)
    workflow_id = models.CharField(max_length=64, blank=True)
    # The id the answer says it answers (blank when it could not be read).
    referenced_id = models.CharField(max_length=255, blank=True)
    response_code = models.CharField(max_length=16, blank=True)
    problem = models.CharField(max_length=255, blank=True)
    # The send it names, when it names one (a suspicious answer does).
    transmission = models.ForeignKey(
        Transmission,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="quarantined_answers",
    )
    bucket = models.ForeignKey(
        "casework.WorkItemBucket",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mesh_quarantined_answers",
    )
    # The content as it arrived, in the encrypted payload store.
    content_storage_name = models.CharField(max_length=255, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    content_size_bytes = models.PositiveIntegerField(default=0)
    retain_until = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    close_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "quarantined MESH answer"
        indexes = [models.Index(fields=["status", "-received_at"])]
        permissions = [
            ("resolve_meshquarantinedanswer", "Can apply or dismiss a kept answer")
        ]

    def __str__(self) -> str:
        return f"quarantined MESH answer {self.message_id} ({self.kind})"
