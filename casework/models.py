"""Work items: one problem with one document that needs a person.

Classification is data (admin-editable): a reason code belongs to a bucket, and the
bucket names the team that works it by default and how soon it is due.

Over 500 lines because it holds every casework model with its choices (items,
teams, buckets, reasons, kept counts), which the migrations read together.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition
from simple_history.models import HistoricalRecords


class Team(models.Model):
    """A group of staff that works the items routed to it.

    Who belongs is a django-guardian grant of ``casework.work_team_items`` on the
    team, to users or to groups.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("work_team_items", "Can see and work this team's work items"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkItemBucket(models.Model):
    """One kind of problem staff recognise, with its default team and due rule."""

    key = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    default_team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="default_for_buckets",
        help_text="New items in this bucket go to this team.",
    )
    due_within_hours = models.PositiveIntegerField(
        default=24, help_text="A new item is due this many hours after it opens."
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "key"]

    def __str__(self) -> str:
        return self.name


class WorkItemCategory(models.TextChoices):
    """The kind of problem, from the document's state (not the reason code)."""

    PREFLIGHT = "preflight", "Cannot be sent as it is (held before sending)"
    SEND_FAILED = "send_failed", "Sending kept failing (held after sending)"
    OUTCOME_UNKNOWN = "outcome_unknown", "Sent, outcome not known"
    REJECTION = "rejection", "Rejected by the practice"
    SYSTEM_ERROR = "system_error", "System error or on hold at the destination"
    UNDELIVERED = "undelivered", "Delivered but never collected"
    CANCEL_AFTER_SENDING = (
        "cancel_after_sending",
        "Cancelled by the source after sending (recall or resolve)",
    )


class ReasonActionClass(models.TextChoices):
    """What kind of action a reason usually calls for (the person still decides)."""

    RETRACE = "retrace", "Re-trace the patient"
    RESEND = "resend", "Resend (unchanged or corrected)"
    REROUTE = "reroute", "Reroute to another practice"
    OTHER_ROUTE = "other_route", "Send by another route"
    NO_FURTHER_ACTION = "no_further_action", "No further action"


# The bucket of items whose reason matched no row: somebody must classify it.
NEEDS_CLASSIFYING = "needs_classifying"


class WorkItemReason(models.Model):
    """What one reason code means, its bucket, and what a person should do next.

    A row matches a code exactly, or every code it starts (``match_prefix``, as for
    DC01.xx or a system reason Connect sends as text), compared after normalising
    case, spaces and trailing punctuation. A row with no code is the fallback for one
    category, for problems that come with no code at all; a code no row matches goes
    to the "needs classifying" bucket (see ``casework.classification``).
    """

    code = models.CharField(max_length=64, blank=True)
    match_prefix = models.BooleanField(
        default=False, help_text="Match every code that starts with this one."
    )
    category = models.CharField(
        max_length=32,
        choices=WorkItemCategory.choices,
        blank=True,
        help_text="Only for a fallback row (no code): the kind of problem it covers.",
    )
    bucket = models.ForeignKey(
        WorkItemBucket, on_delete=models.PROTECT, related_name="reasons"
    )
    title = models.CharField(max_length=200)
    suggested_actions = models.JSONField(
        default=list, blank=True, help_text="Plain-language next steps, in order."
    )
    is_clinical = models.BooleanField(
        default=False,
        help_text="A practice's clinical decision: never resolved automatically.",
    )
    action_class = models.CharField(
        max_length=32,
        choices=ReasonActionClass.choices,
        blank=True,
        help_text="The kind of action this reason usually calls for.",
    )

    class Meta:
        ordering = ["bucket__position", "code", "category"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"],
                condition=~Q(code=""),
                name="work_item_reason_unique_code",
            ),
            models.UniqueConstraint(
                fields=["category"],
                condition=Q(code=""),
                name="work_item_reason_one_fallback_per_category",
            ),
            models.CheckConstraint(
                condition=~Q(code="") | ~Q(category=""),
                name="work_item_reason_code_or_category",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code or f'({self.category})'}: {self.title}"


class WorkItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    ASSIGNED = "assigned", "Assigned"
    RESOLVED = "resolved", "Resolved"
    CANCELLED = "cancelled", "Cancelled (document withdrawn)"
    # The document left the attention state without a person deciding here (the
    # engine settled it, or the rejection was resolved at Connect).
    CLOSED = "closed", "Closed by the system"


ACTIVE_STATUSES = (WorkItemStatus.OPEN, WorkItemStatus.ASSIGNED)
ENDED_STATUSES = (
    WorkItemStatus.RESOLVED,
    WorkItemStatus.CANCELLED,
    WorkItemStatus.CLOSED,
)


class WorkItemResolution(models.TextChoices):
    RESEND = "resend", "Resent unchanged"
    CORRECTED_VERSION = "corrected_version", "Corrected version sent"
    REROUTE = "reroute", "Rerouted to another practice"
    OTHER_ROUTE = "other_route", "Sent by another route"
    NO_FURTHER_ACTION = "no_further_action", "No further action"
    DOCUMENT_CANCELLED = "document_cancelled", "Document cancelled"
    DOCUMENT_MOVED_ON = "document_moved_on", "Document moved on (system)"


class OtherRouteChannel(models.TextChoices):
    POST = "post", "Post"
    SECURE_EMAIL = "secure_email", "Secure email (NHSmail)"
    MESH = "mesh", "Direct MESH"
    HAND_DELIVERED = "hand_delivered", "Hand delivered"
    GIVEN_TO_PATIENT = "given_to_patient", "Given to the patient"
    OTHER = "other", "Other"


S = WorkItemStatus

# The fields an item's place in the queue's counts depends on (casework.counting).
COUNTED_FIELDS = frozenset(
    {"status", "bucket_id", "team_id", "sending_organisation_id", "due_at"}
)
NOT_LOADED = ("not loaded",)


class WorkItem(FSMModelMixin, models.Model):
    """One problem with one document that needs (or needed) a person."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    document = models.ForeignKey(
        "docflow.Document", on_delete=models.PROTECT, related_name="work_items"
    )
    # The document's sender, copied when the item opens (a document's sender never
    # changes): the organisation grant, the counts and the queue filters read it
    # here instead of joining every item to its document.
    sending_organisation = models.ForeignKey(
        "docflow.SendingOrganisation",
        on_delete=models.PROTECT,
        related_name="work_items",
    )
    # The document's urgent flag, copied when the item opens like its sender: the
    # queue lifts urgent items to the top without joining documents.
    urgent = models.BooleanField(default=False)
    category = models.CharField(max_length=32, choices=WorkItemCategory.choices)
    reason_code = models.CharField(max_length=64, blank=True)
    # Classification, copied when the item opens so later edits of the reference
    # data never rewrite what a person was told.
    bucket = models.ForeignKey(
        WorkItemBucket,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="work_items",
    )
    reason_title = models.CharField(max_length=200, blank=True)
    suggested_actions = models.JSONField(default=list, blank=True)
    is_clinical = models.BooleanField(default=False)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="work_items",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_work_items",
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = FSMField(
        max_length=16,
        choices=WorkItemStatus.choices,
        default=S.OPEN,
        protected=True,
    )
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="closed_work_items",
    )
    resolution = models.CharField(
        max_length=32, choices=WorkItemResolution.choices, blank=True
    )
    resolution_reason = models.TextField(blank=True)
    # What the resolution did: channel and reference, old and new destination, the
    # replacing document. Identifiers only, never patient details.
    resolution_details = models.JSONField(default=dict, blank=True)
    # Bumped by every write (casework.services.recording.save_and_audit): a page
    # carries the version it showed, and an action on an older one is refused.
    version = models.PositiveIntegerField(default=1)

    history = HistoricalRecords()

    # The queue's counts (WorkItemCount) follow every save and delete of an item:
    # what the row was counted under when loaded, and what it is counted under now.
    # Bulk writes (QuerySet.update, bulk_create, COPY) bypass this: after one, call
    # casework.counting.work_item_counts_rebuild().
    _counted_under: tuple | None = None

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # DESIGN §3: a document needing attention has exactly one open work item.
            models.UniqueConstraint(
                fields=["document"],
                condition=Q(status__in=["open", "assigned"]),
                name="work_item_one_open_per_document",
            ),
            models.CheckConstraint(
                condition=~Q(status="assigned") | Q(assignee__isnull=False),
                name="work_item_assigned_has_assignee",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "assigned"]) | ~Q(resolution=""),
                name="work_item_ended_has_resolution",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "category", "-opened_at"]),
            models.Index(fields=["status", "opened_at", "id"]),
            # The queue: active items oldest first, read in order a page at a time.
            # With two statuses the index above needs a sort of every active item.
            models.Index(
                fields=["opened_at", "id"],
                condition=Q(status__in=["open", "assigned"]),
                name="work_item_active_queue",
            ),
            # The queue's default order: urgent first, then overdue, then oldest.
            # Each of its four parts (urgent or not, overdue or not) is read in
            # opened order from here, the due date checked from the index itself.
            models.Index(
                fields=["urgent", "opened_at", "id"],
                include=["due_at"],
                condition=Q(status__in=["open", "assigned"]),
                name="work_item_active_priority",
            ),
            # The queue by due date, soonest first (items with no due date after).
            models.Index(
                fields=["due_at", "id"],
                condition=Q(status__in=["open", "assigned"]),
                name="work_item_active_due",
            ),
            # The counts per category: every active item's bucket, grants, due date
            # and the columns the queue filters on, from the index alone (an
            # index-only scan, no table rows read, whichever filters are set).
            models.Index(
                fields=[
                    "bucket",
                    "team",
                    "sending_organisation",
                    "due_at",
                    "assignee",
                    "opened_at",
                    "category",
                    "reason_code",
                ],
                condition=Q(status__in=["open", "assigned"]),
                name="work_item_active_counts",
            ),
            models.Index(fields=["team", "status", "opened_at"]),
            models.Index(fields=["assignee", "status"]),
        ]
        permissions = [
            ("assign_workitem", "Can assign work items"),
            ("resend_workitem", "Can resolve work items by resending unchanged"),
            (
                "decide_workitem",
                "Can resolve work items by rerouting, correcting, sending another "
                "way, closing or cancelling",
            ),
            ("reopen_workitem", "Can reopen ended work items"),
        ]

    def __str__(self) -> str:
        return f"{self.get_category_display()} ({self.status})"

    def save(self, *args, **kwargs) -> None:
        # The item and its change to the counts commit together (no savepoint when
        # the caller's transaction already holds both).
        from casework.counting import work_item_counts_move

        before = self._counted_before(kwargs.get("using"))
        if transaction.get_connection(kwargs.get("using")).in_atomic_block:
            super().save(*args, **kwargs)
            work_item_counts_move(before=before, after=self.counted_under())
        else:
            with transaction.atomic(using=kwargs.get("using")):
                super().save(*args, **kwargs)
                work_item_counts_move(before=before, after=self.counted_under())
        self._counted_under = self.counted_under()

    def delete(self, *args, **kwargs):
        from casework.counting import work_item_counts_move

        with transaction.atomic(using=kwargs.get("using")):
            before = self._counted_before(kwargs.get("using"))
            deleted = super().delete(*args, **kwargs)
            work_item_counts_move(before=before, after=None)
        self._counted_under = None
        return deleted

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @classmethod
    def from_db(cls, db, field_names, values):
        item = super().from_db(db, field_names, values)
        # A row loaded without the counted fields (``only()``) is looked up on save.
        if COUNTED_FIELDS.issubset(field_names):
            item._counted_under = item.counted_under()
        else:
            item._counted_under = NOT_LOADED
        return item

    def counted_under(self) -> tuple | None:
        """The key this item adds one to in the queue's counts; None once ended."""
        from casework.counting import count_key

        return count_key(self)

    def refresh_from_db(self, *args, **kwargs) -> None:
        super().refresh_from_db(*args, **kwargs)
        self._counted_under = self.counted_under()

    def _counted_before(self, using) -> tuple | None:
        from casework.counting import count_key_of_row

        if self._state.adding:
            return None
        if self._counted_under is NOT_LOADED:
            return count_key_of_row(self.pk, using=using)
        return self._counted_under

    # Transitions: only services call them; they change this row's fields only.

    @transition(field=status, source=S.OPEN, target=S.ASSIGNED)
    def assign(self, *, assignee: Any) -> None:
        """A person takes the item (or is given it)."""
        self.assignee = assignee

    @transition(field=status, source=S.ASSIGNED, target=S.ASSIGNED)
    def reassign(self, *, assignee: Any) -> None:
        """The item moves to another person."""
        self.assignee = assignee

    @transition(field=status, source=S.ASSIGNED, target=S.OPEN)
    def unassign(self) -> None:
        """The item goes back to its team's queue."""
        self.assignee = None

    def _end(self, *, resolution: str, reason: str, details: dict, by: Any, at) -> None:
        self.resolution = resolution
        self.resolution_reason = reason
        self.resolution_details = details
        self.closed_by = by
        self.closed_at = at

    @transition(field=status, source=[S.OPEN, S.ASSIGNED], target=S.RESOLVED)
    def resolve(
        self, *, resolution: str, reason: str, details: dict, by: Any, at
    ) -> None:
        """A person decided what happens to the document."""
        self._end(resolution=resolution, reason=reason, details=details, by=by, at=at)

    @transition(field=status, source=[S.OPEN, S.ASSIGNED], target=S.CANCELLED)
    def cancel(self, *, reason: str, details: dict, by: Any, at) -> None:
        """A person withdrew the document; nothing is left to do."""
        self._end(
            resolution=WorkItemResolution.DOCUMENT_CANCELLED,
            reason=reason,
            details=details,
            by=by,
            at=at,
        )

    @transition(field=status, source=[S.OPEN, S.ASSIGNED], target=S.CLOSED)
    def close(self, *, reason: str, at) -> None:
        """The document left the attention state without a decision here."""
        self._end(
            resolution=WorkItemResolution.DOCUMENT_MOVED_ON,
            reason=reason,
            details={},
            by=None,
            at=at,
        )

    @transition(field=status, source=[S.RESOLVED, S.CANCELLED, S.CLOSED], target=S.OPEN)
    def reopen(self, *, due_at) -> None:
        """A person found the problem is not over; the item goes back to the queue."""
        self.assignee = None
        self.closed_at = None
        self.closed_by = None
        self.resolution = ""
        self.resolution_reason = ""
        self.resolution_details = {}
        self.due_at = due_at


class WorkItemCount(models.Model):
    """A change of +n or -n to the number of active items of one bucket, team,
    sending organisation and due day (UTC; none when the item has no due date).

    The queue's counts per bucket are the sums of these rows (``casework.counting``):
    every item save adds its rows in the item's own transaction, appended rather than
    updated so that concurrent writers never wait on (or deadlock over) a shared
    counter; the scheduled compaction folds them into one row per key.
    """

    bucket = models.ForeignKey(
        WorkItemBucket,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    team = models.ForeignKey(
        Team,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    sending_organisation = models.ForeignKey(
        "docflow.SendingOrganisation",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    due_on = models.DateField(null=True)
    delta = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.bucket_id}/{self.team_id}/{self.due_on}: {self.delta:+d}"


# Patient re-traces (PDS) live in their own module; imported so Django finds them.
from casework.patient_traces import PatientTrace, PatientTraceOutcome  # noqa: E402, F401
