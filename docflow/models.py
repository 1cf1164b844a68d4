"""The document domain: tenants, destinations, documents and their payload bytes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition
from rest_framework_api_key.models import AbstractAPIKey
from simple_history.models import HistoricalRecords


class SendingOrganisation(models.Model):
    """A tenant: one trust or business unit that sends documents under its ODS code."""

    ods_code = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=255)
    # Connect credentials: the client id, and the *name* of the secret (an environment
    # variable or secret file), never the secret itself.
    connect_client_id = models.CharField(max_length=100, blank=True)
    connect_secret_ref = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("access_documents", "Can see this organisation's documents"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.ods_code})"


class EndpointType(models.TextChoices):
    DOCMAN10 = "docman10", "Docman 10"
    DOCMAN7 = "docman7", "Docman 7"
    EMIS_MESH = "emis_mesh", "EMIS via MESH"
    TPP_MESH = "tpp_mesh", "TPP via MESH"


class Channel(models.TextChoices):
    CONNECT = "connect", "Docman Connect"
    MESH = "mesh", "Direct MESH"


class DestinationProfile(models.Model):
    """What one endpoint type can take and how it reports back (admin-editable)."""

    endpoint_type = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    channel = models.CharField(
        max_length=16, choices=Channel.choices, default=Channel.CONNECT
    )
    max_file_size_bytes = models.PositiveBigIntegerField()
    allowed_media_types = models.JSONField(default=list)
    preferred_media_type = models.CharField(max_length=100, default="application/pdf")
    convert_html_to_pdf = models.BooleanField(default=True)
    convert_images_to_pdf = models.BooleanField(default=True)
    reports_accepted = models.BooleanField(
        default=True, help_text="False where Delivered (4003) is the final status."
    )
    expected_seconds_in_state = models.JSONField(
        default=dict, help_text='e.g. {"sending": 300, "received": 3600}'
    )
    # Hard limits on one HTML or image conversion (docflow.conversion.isolated):
    # a conversion past any of them holds the document (CONVERSION_LIMIT).
    conversion_wall_seconds = models.PositiveIntegerField(
        default=20, help_text="Seconds a conversion may take, start to end."
    )
    conversion_cpu_seconds = models.PositiveIntegerField(
        default=15, help_text="CPU seconds a conversion may use."
    )
    conversion_memory_mib = models.PositiveIntegerField(
        default=768, help_text="Address space a conversion may use, in MiB."
    )
    conversion_max_pages = models.PositiveIntegerField(
        default=2000,
        help_text="Pages a converted document may have (checked while rendering).",
    )
    send_with_lost_content = models.BooleanField(
        default=False,
        help_text=(
            "Send a converted letter whose external images, stylesheets or fonts "
            "were refused, with the loss recorded; otherwise it is held for a person."
        ),
    )

    class Meta:
        ordering = ["endpoint_type"]

    def __str__(self) -> str:
        return self.name


class OrganisationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    CLOSED = "closed", "Closed"
    DORMANT = "dormant", "Dormant"
    PROPOSED = "proposed", "Proposed"


class OrganisationSource(models.TextChoices):
    ODS_IMPORT = "ods_import", "ODS import"
    CONNECT_LOOKUP = "connect_lookup", "Connect lookup"
    MANUAL = "manual", "Entered by hand"


class Organisation(models.Model):
    """One possible destination from the ODS directory (usually a GP practice)."""

    ods_code = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16,
        choices=OrganisationStatus.choices,
        default=OrganisationStatus.ACTIVE,
    )
    endpoint_type = models.CharField(max_length=32, blank=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(
        max_length=16,
        choices=OrganisationSource.choices,
        default=OrganisationSource.MANUAL,
    )

    class Meta:
        ordering = ["ods_code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ods_code})"

    @property
    def is_active(self) -> bool:
        return self.status == OrganisationStatus.ACTIVE


class ApiKey(AbstractAPIKey):
    """One hashed API key for one source system, scoped to one sending organisation."""

    sending_organisation = models.ForeignKey(
        SendingOrganisation, on_delete=models.PROTECT, related_name="api_keys"
    )
    # The service account whose permissions the key carries (e.g. content access).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_keys"
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def audit_actor(self):
        from audit.actors import Actor

        return Actor(kind="api_client", identifier=self.prefix, label=self.name[:150])


class DocumentType(models.TextChoices):
    DISCHARGE_SUMMARY = "discharge_summary", "Discharge summary"
    CLINIC_LETTER = "clinic_letter", "Clinic letter"
    ED_ATTENDANCE = "ed_attendance", "Emergency department attendance"
    RESULT = "result", "Result"
    REFERRAL = "referral", "Referral"
    OTHER = "other", "Other"


class Gender(models.TextChoices):
    MALE = "Male", "Male"
    FEMALE = "Female", "Female"
    OTHER = "Other", "Other"
    UNKNOWN = "Unknown", "Unknown"


class DocumentStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    READY = "ready", "Ready"
    HELD = "held", "Held"
    SENDING = "sending", "Sending"
    OUTCOME_UNKNOWN = "outcome_unknown", "Outcome unknown"
    RECEIVED = "received", "Received by Connect"
    DELIVERED = "delivered", "Delivered"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    REJECTION_RESOLVED = "rejection_resolved", "Rejection resolved"
    SYSTEM_ERROR = "system_error", "System error"
    UNDELIVERED = "undelivered", "Undelivered"
    CANCELLED = "cancelled", "Cancelled"


S = DocumentStatus
ATTENTION_STATES = frozenset(
    {S.HELD, S.OUTCOME_UNKNOWN, S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED}
)
FINAL_STATES = frozenset({S.ACCEPTED, S.REJECTION_RESOLVED, S.CANCELLED})


class Document(FSMModelMixin, models.Model):
    """One clinical document event from a source system, on its way to one practice."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sending_organisation = models.ForeignKey(
        SendingOrganisation, on_delete=models.PROTECT, related_name="documents"
    )
    # Idempotency: the source system (API key prefix or "staff") plus its event key.
    source_system = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=128)
    fingerprint = models.CharField(max_length=64)
    source_reference = models.CharField(max_length=255, blank=True)

    # Patient (minimal; never in URLs, file names or logs).
    nhs_number = models.CharField(max_length=10, db_index=True)
    patient_family_name = models.CharField(max_length=255)
    patient_given_names = models.CharField(max_length=255, blank=True)
    patient_birth_date = models.DateField()
    patient_gender = models.CharField(max_length=8, choices=Gender.choices, blank=True)
    mrn = models.CharField("hospital number (MRN)", max_length=255, blank=True)

    # Document metadata, limits matching Connect's DC01 rules.
    document_type = models.CharField(max_length=32, choices=DocumentType.choices)
    description = models.CharField(max_length=255)
    event_date = models.DateField()
    folder_name = models.CharField(max_length=50, blank=True)
    notes = models.CharField(max_length=255, blank=True)
    sender_department = models.CharField(max_length=255, blank=True)
    sender_person = models.CharField(max_length=255, blank=True)
    destination_ods_code = models.CharField(max_length=10, db_index=True)
    destination = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="documents",
        help_text="Resolved from the directory during preparation.",
    )
    urgent = models.BooleanField(default=False)
    action_required = models.BooleanField(default=False)
    medication_changed = models.BooleanField(default=False)
    inpatient = models.BooleanField(default=False)

    status = FSMField(
        max_length=32,
        choices=DocumentStatus.choices,
        default=S.SUBMITTED,
        protected=True,
    )
    status_changed_at = models.DateTimeField(default=timezone.now)
    status_reason = models.CharField(
        max_length=255,
        blank=True,
        help_text="Code or short reason for the last change.",
    )

    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="parts"
    )
    part_number = models.PositiveSmallIntegerField(null=True, blank=True)
    part_count = models.PositiveSmallIntegerField(null=True, blank=True)
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replaced_by",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # History rows never copy the patient's identifiers: the document row holds them
    # once, and retention purges them with it.
    history = HistoricalRecords(
        excluded_fields=[
            "updated_at",
            "nhs_number",
            "patient_family_name",
            "patient_given_names",
            "patient_birth_date",
        ]
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "idempotency_key"],
                name="document_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["sending_organisation", "-created_at", "-id"]),
            # The documents list of someone who sees several organisations (or all):
            # newest first, read in index order and filtered, never sorted whole.
            models.Index(fields=["-created_at", "-id"], name="document_newest"),
            models.Index(fields=["sending_organisation", "status", "-created_at"]),
            models.Index(fields=["status", "status_changed_at"]),
            models.Index(fields=["sending_organisation", "source_reference"]),
            # Held documents by reason and destination, from the index alone (the
            # operations watch counts the destinations refusing them, DC02/DC03):
            # the held ones only, not every document that was ever held.
            models.Index(
                fields=["status_reason", "destination_ods_code"],
                condition=Q(status="held"),
                name="document_held_by_reason",
            ),
        ]
        permissions = [
            ("view_document_content", "Can view patient content of documents"),
            (
                "view_patient_identity",
                "Can reveal a document's patient NHS number, name and birth date",
            ),
        ]

    def __str__(self) -> str:
        return f"document {self.public_id}"

    @property
    def needs_attention(self) -> bool:
        return self.status in ATTENTION_STATES

    # Transitions: DESIGN §3, every edge and nothing else. Only services call them.

    @transition(field=status, source=S.SUBMITTED, target=S.READY)
    def mark_prepared(self) -> None:
        """Preparation produced a payload fit for the destination profile."""

    @transition(field=status, source=[S.SUBMITTED, S.READY], target=S.HELD)
    def hold_before_send(self) -> None:
        """A pre-flight check failed; a person must decide."""

    @transition(field=status, source=S.HELD, target=S.READY)
    def release(self) -> None:
        """A person fixed what held the document."""

    @transition(
        field=status,
        source=[S.SUBMITTED, S.READY, S.HELD, S.SYSTEM_ERROR],
        target=S.CANCELLED,
    )
    def cancel(self) -> None:
        """Withdrawn before (or instead of) reaching the practice."""

    @transition(field=status, source=S.READY, target=S.SENDING)
    def claim_for_sending(self) -> None:
        """One worker has taken the document and is about to POST it."""

    @transition(field=status, source=[S.SENDING, S.OUTCOME_UNKNOWN], target=S.RECEIVED)
    def mark_received(self) -> None:
        """Connect has it (4002), either from the POST or found by idempotency key."""

    @transition(field=status, source=S.SENDING, target=S.READY)
    def retry_later(self) -> None:
        """A failure before Connect took the document: safe to send again."""

    @transition(field=status, source=S.OUTCOME_UNKNOWN, target=S.READY)
    def mark_proved_absent(self) -> None:
        """Connect has no document for our idempotency key: sending again is safe."""

    @transition(field=status, source=[S.SENDING, S.OUTCOME_UNKNOWN], target=S.HELD)
    def hold_after_send_attempt(self) -> None:
        """Connect refused it (DC01/DC02/DC03/size) or it cannot be settled."""

    @transition(field=status, source=S.SENDING, target=S.OUTCOME_UNKNOWN)
    def mark_outcome_unknown(self) -> None:
        """The POST may or may not have reached Connect; never resend blindly."""

    @transition(field=status, source=S.RECEIVED, target=S.DELIVERED)
    def mark_delivered(self) -> None:
        """4003: delivered to the practice system."""

    @transition(field=status, source=[S.RECEIVED, S.DELIVERED], target=S.ACCEPTED)
    def mark_accepted(self) -> None:
        """4010: filed by the practice. Final."""

    @transition(field=status, source=[S.RECEIVED, S.DELIVERED], target=S.REJECTED)
    def mark_rejected(self) -> None:
        """4005: the practice rejected it with a REJ code."""

    @transition(field=status, source=[S.RECEIVED, S.DELIVERED], target=S.SYSTEM_ERROR)
    def mark_system_error(self) -> None:
        """5000 or 7000 reported by Connect."""

    @transition(field=status, source=S.DELIVERED, target=S.UNDELIVERED)
    def mark_undelivered(self) -> None:
        """Delivered but never collected or acknowledged (NDR, expiry)."""

    @transition(
        field=status, source=[S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED], target=S.READY
    )
    def requeue(self) -> None:
        """A person chose to resend, reroute or send a corrected version."""

    @transition(
        field=status,
        source=[S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED],
        target=S.REJECTION_RESOLVED,
    )
    def resolve_rejection(self) -> None:
        """6000: closed by a person with the outcome recorded. Final."""


class PayloadStage(models.TextChoices):
    ORIGINAL = "original", "Original upload"
    CONVERTED = "converted", "Converted"
    OPTIMISED = "optimised", "Optimised"
    SPLIT_PART = "split_part", "Split part"


class PayloadVersion(models.Model):
    """One version of a document's bytes, encrypted at rest under a named key."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    document = models.ForeignKey(
        Document, on_delete=models.PROTECT, related_name="payload_versions"
    )
    stage = models.CharField(max_length=16, choices=PayloadStage.choices)
    media_type = models.CharField(max_length=100)
    file_extension = models.CharField(max_length=10)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField("SHA-256 of the plaintext", max_length=64)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    # External resources conversion refused to fetch for this version, as
    # {kind, scheme, host, count}: never a full address (it may carry patient data).
    refused_resources = models.JSONField(default=list, blank=True)
    key_id = models.CharField(max_length=32)
    storage_name = models.CharField(max_length=255, unique=True)
    retain_until = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "created_at", "id"]
        indexes = [models.Index(fields=["key_id"])]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} of {self.document.public_id}"


class PreparationWakeUp(models.Model):
    """One row: whether a preparation task is queued that has not yet looked for
    documents. Intake queues a task only when none is (``pending`` false), and a
    task clears the flag just before it takes the documents waiting, so every
    document is found by a task that starts after it is stored. Under load that is
    one task per batch instead of one per document."""

    pending = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "preparation wake-up"

    def __str__(self) -> str:
        return "a preparation is queued" if self.pending else "no preparation queued"


class ConversionJob(models.Model):
    """One submitted document whose HTML or image waits for (or is in) its bounded
    conversion, outside any preparation batch. The row goes when preparation ends
    (ready or held); ``attempts`` counts conversions started, so a child or worker
    that dies mid-conversion is tried again a few times, never for ever."""

    document = models.OneToOneField(
        Document, on_delete=models.CASCADE, related_name="conversion_job"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # Set while a worker converts it; a lease that ran out means the worker died.
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"conversion of {self.document_id} (attempts {self.attempts})"


class ConversionSlot(models.Model):
    """One of the places a conversion may run in, shared by every cluster
    (``DOCFLOW_CONVERSION_SLOTS`` of them): taken by compare-and-set on
    (job, lease), so conversions never occupy every worker."""

    number = models.PositiveSmallIntegerField(unique=True)
    job = models.OneToOneField(
        ConversionJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slot",
    )
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"conversion slot {self.number}"


class PayloadBlob(models.Model):
    """One encrypted payload blob held in the database (``DOCFLOW_PAYLOAD_STORE``
    "database"), under the same random name the file store would give it.

    It is inserted in the transaction that records the payload version naming it,
    so the two commit or roll back together; key rotation rewrites it in the
    transaction that updates the version's key id, and purge deletes it in the
    transaction that marks the version purged. The ciphertext column is stored
    EXTERNAL on PostgreSQL: AES-GCM output does not compress, and a blob's header
    (its key id) is then read without fetching the whole value."""

    name = models.CharField(max_length=255, primary_key=True)
    ciphertext = models.BinaryField()
    stored_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "payload blob"

    def __str__(self) -> str:
        return f"payload blob {self.name}"


class Lease(models.Model):
    """Who runs one singleton job until when (the tracker, the MESH inbox poll,
    the operations watch, the file-drop scanner...): taken by compare-and-set, so
    two runs on any number of nodes never overlap; renewed by its holder's
    heartbeat, so a holder that died leaves a lease that simply runs out
    (``docflow.leases``)."""

    name = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=64, blank=True)
    # Which process holds it ("host:pid"), for operators; never read to decide.
    node = models.CharField(max_length=128, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at}"


class Stamp(models.Model):
    """A counter every process reads cheaply and bumps when something it caches
    changed (``api_keys``: a key, service account or organisation), so caches in
    other processes and on other nodes know to forget."""

    name = models.CharField(max_length=100, unique=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.value}"
