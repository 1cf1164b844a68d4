"""Patient re-traces: what PDS said about a work item's patient, each time a person
asked (the model lives here, imported by ``casework.models``, to keep that module
small)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class PatientTraceOutcome(models.TextChoices):
    """What one PDS look-up came to."""

    FOUND = "found", "PDS holds the patient"
    NOT_FOUND = "not_found", "PDS holds no patient with this NHS number"
    INVALIDATED = "invalidated", "The NHS number was invalidated"
    INVALID_NHS_NUMBER = "invalid_nhs_number", "Not a valid NHS number"
    UNAVAILABLE = "unavailable", "PDS unavailable"
    FAILED = "failed", "PDS refused the look-up"


class PatientTrace(models.Model):
    """One look-up of a work item's patient on PDS, by one person, and its answer.

    Holds what a person needs to decide (the practice PDS names and since when,
    deceased, restricted, superseded), never the patient's details: a superseding
    NHS number is not kept, only the fact that the number was superseded.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    work_item = models.ForeignKey(
        "casework.WorkItem", on_delete=models.PROTECT, related_name="patient_traces"
    )
    document = models.ForeignKey(
        "docflow.Document", on_delete=models.PROTECT, related_name="patient_traces"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="patient_traces",
    )
    traced_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=32, choices=PatientTraceOutcome.choices)
    # The practice PDS names as current (blank: none shown, or registration ended).
    practice_ods_code = models.CharField(max_length=10, blank=True)
    practice_since = models.DateField(null=True, blank=True)
    deceased = models.BooleanField(default=False)
    deceased_on = models.DateField(null=True, blank=True)
    restricted = models.BooleanField(default=False)
    superseded = models.BooleanField(default=False)
    # Why there is no answer (unavailable, refused); never patient data.
    error_text = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-traced_at", "-id"]
        indexes = [models.Index(fields=["work_item", "-traced_at", "-id"])]
        permissions = [
            ("trace_patient", "Can re-trace a work item's patient on PDS"),
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} ({self.traced_at:%Y-%m-%d %H:%M})"
