"""Operations: incidents, their notifications, destination pauses and hourly counts."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django_fsm import FSMField, FSMModelMixin, transition

from transmissions.models import HaltKind, OutboundHalt


class IncidentKind(models.TextChoices):
    STUCK_DOCUMENTS = "stuck_documents", "Documents stuck in a state"
    SYSTEM_ERROR_SURGE = "system_error_surge", "Surge of system errors"
    REJECTION_SURGE = "rejection_surge", "Surge of rejections"
    OUTBOUND_HALTED = "outbound_halted", "Outbound sending halted"
    DESTINATION_UNACKNOWLEDGED = (
        "destination_unacknowledged",
        "Destination not acknowledging documents",
    )
    DESTINATION_REFUSING = "destination_refusing", "Destination refusing documents"
    TASK_FAILURES = "task_failures", "Background tasks timing out or failing"
    CHANGES_FEED_FAILING = "changes_feed_failing", "Connect changes feed not read"
    REASON_NOT_CLASSIFIED = (
        "reason_not_classified",
        "Work items opened with a reason nobody has classified",
    )
    MESH_ANSWER_SUSPICIOUS = (
        "mesh_answer_suspicious",
        "MESH answers from a mailbox a document was not sent to",
    )


class IncidentSeverity(models.TextChoices):
    LOW = "low", "Low"
    WARNING = "warning", "Warning"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"


class IncidentState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Incident(FSMModelMixin, models.Model):
    """One operational problem (one kind, one scope) from when it was seen until it
    cleared; documents and detections join it instead of raising their own."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=IncidentKind.choices)
    scope = models.CharField(
        max_length=200,
        help_text="What the problem covers, e.g. 'sending:docman10' or an ODS code.",
    )
    severity = models.CharField(
        max_length=16,
        choices=IncidentSeverity.choices,
        default=IncidentSeverity.MAJOR,
    )
    state = FSMField(
        max_length=16,
        choices=IncidentState.choices,
        default=IncidentState.OPEN,
        protected=True,
    )
    summary = models.CharField(max_length=255)
    # Counts, ages and thresholds only: never patient data.
    details = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_incidents",
    )
    occurrences = models.PositiveIntegerField(
        default=1, help_text="Detections that found the problem still there."
    )
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=255, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "scope"],
                condition=~Q(state="resolved"),
                name="incident_one_unresolved_per_kind_and_scope",
            ),
        ]
        indexes = [models.Index(fields=["state", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.scope})"

    @property
    def is_unresolved(self) -> bool:
        return self.state != IncidentState.RESOLVED

    @transition(
        field=state, source=IncidentState.OPEN, target=IncidentState.ACKNOWLEDGED
    )
    def acknowledge(self) -> None:
        """Somebody owns the problem now; reminders stop."""

    @transition(
        field=state,
        source=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED],
        target=IncidentState.RESOLVED,
    )
    def resolve(self) -> None:
        """The condition cleared or a person closed it."""


class NotificationEvent(models.TextChoices):
    OPENED = "opened", "Opened"
    REMINDER = "reminder", "Reminder"
    RESOLVED = "resolved", "Resolved"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "No channel configured"


class IncidentNotification(models.Model):
    """One alert about one incident event, delivered by email and/or webhook."""

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=16, choices=NotificationEvent.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    email_status = models.CharField(
        max_length=16,
        choices=NotificationStatus.choices,
        default=NotificationStatus.PENDING,
    )
    webhook_status = models.CharField(
        max_length=16,
        choices=NotificationStatus.choices,
        default=NotificationStatus.PENDING,
    )
    error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_event_display()}: {self.incident}"


class DestinationPauseManager(models.Manager):
    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .filter(kind=HaltKind.DESTINATION_PAUSE, sending_organisation__isnull=True)
        )


class DestinationPause(OutboundHalt):
    """A pause of every send to one destination, as operations shows it: an
    ``OutboundHalt`` of kind ``destination_paused`` (no table of its own; opened
    and lifted through transmissions' ``destination_pause_open`` and
    ``destination_pause_close``)."""

    objects = DestinationPauseManager()

    class Meta:
        proxy = True
        ordering = ["-opened_at", "-id"]

    def __str__(self) -> str:
        return f"pause of {self.destination_ods_code}"


class HourlyCount(models.Model):
    """How many documents reached one state in one hour, for one destination, one
    document type and one reason code (rolled up from the document history)."""

    hour = models.DateTimeField()
    status = models.CharField(max_length=32)
    destination_ods_code = models.CharField(max_length=10, blank=True)
    document_type = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=64, blank=True)
    count = models.PositiveIntegerField()

    class Meta:
        ordering = ["hour", "status"]
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "hour",
                    "status",
                    "destination_ods_code",
                    "document_type",
                    "reason",
                ],
                name="hourly_count_unique_key",
            ),
        ]
        indexes = [models.Index(fields=["status", "hour"])]

    def __str__(self) -> str:
        return f"{self.count} {self.status} at {self.hour:%Y-%m-%d %H:00}"


class HourlyStateCount(models.Model):
    """How many documents reached one state in one hour, all destinations together
    (the dashboard's throughput charts read these few rows)."""

    hour = models.DateTimeField()
    status = models.CharField(max_length=32)
    count = models.PositiveIntegerField()

    class Meta:
        ordering = ["hour", "status"]
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "status"], name="hourly_state_count_unique_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.count} {self.status} at {self.hour:%Y-%m-%d %H:00}"


class Snapshot(models.Model):
    """The latest value of one costly figure (e.g. documents by state), taken by the
    scheduled watch so pages and scrapes read one row instead of counting."""

    key = models.CharField(max_length=64, unique=True)
    taken_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.key} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class DocumentCount(models.Model):
    """Documents by state and destination, kept in the same transaction as every
    change: a database trigger on ``docflow_document`` appends -1 for the key a row
    leaves and +1 for the key it enters (insert, update of status or destination,
    delete), so no two writers wait on one counter. ``destination_id`` is 0 for a
    document without a resolved destination. The watch folds the unfolded rows into
    one row per key (``operations.counting``), so reads sum a few thousand rows
    whatever the number of documents. See ``operations.counting``."""

    status = models.CharField(max_length=32)
    destination_id = models.BigIntegerField(default=0)
    destination_ods_code = models.CharField(max_length=16, blank=True, default="")
    delta = models.BigIntegerField()
    folded = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["status", "destination_id", "destination_ods_code"],
                name="ops_doccount_key",
            ),
            # What the fold reads: only rows appended since the last fold.
            models.Index(
                fields=["status", "destination_id", "destination_ods_code"],
                condition=Q(folded=False),
                name="ops_doccount_unfolded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.destination_ods_code}: {self.delta:+d}"
