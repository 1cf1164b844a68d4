"""Source systems that reach docflow other than through its REST API, and how each
one's messages are read (HL7 v2 MDM over MLLP, or a watched folder)."""

from __future__ import annotations

from django.db import models

from docflow.models import DocumentType, SendingOrganisation


class IntakeChannel(models.TextChoices):
    MLLP = "mllp", "HL7 v2 MDM over MLLP"
    FILE_DROP = "file_drop", "File drop (document and JSON sidecar)"


class DestinationRule(models.TextChoices):
    REGISTERED_PRACTICE = "pd1_3", "Registered practice (PD1-3)"
    PRIMARY_CARE_DOCTOR = "pd1_4", "Practice packed with the GP (PD1-4)"
    FIXED = "fixed", "Always the fixed destination below"


class SourceSystem(models.Model):
    """One system (usually a trust's integration engine) allowed to submit documents
    for one sending organisation over one intake channel."""

    code = models.SlugField(
        max_length=40,
        unique=True,
        help_text="Short name; documents record it as the source (mllp:<code>).",
    )
    name = models.CharField(max_length=255)
    channel = models.CharField(max_length=16, choices=IntakeChannel.choices)
    sending_organisation = models.ForeignKey(
        SendingOrganisation, on_delete=models.PROTECT, related_name="source_systems"
    )
    is_active = models.BooleanField(default=True)
    # MLLP: how a message names its sender (MSH-4 sending facility, MSH-3 application).
    sending_facility = models.CharField(max_length=100, blank=True)
    sending_application = models.CharField(max_length=100, blank=True)
    # MLLP over TLS: the SHA-256 fingerprint of the client certificate this system
    # must present. Empty: no certificate is required (loopback or server-only TLS).
    certificate_sha256 = models.CharField(
        max_length=95,
        blank=True,
        help_text="SHA-256 of the client certificate (hex, colons allowed).",
    )
    # File drop: the folder watched for this system's documents and sidecars.
    drop_folder = models.CharField(max_length=500, blank=True)
    # Field mapping choices.
    destination_rule = models.CharField(
        max_length=8,
        choices=DestinationRule.choices,
        default=DestinationRule.REGISTERED_PRACTICE,
    )
    fixed_destination_ods_code = models.CharField(max_length=10, blank=True)
    nhs_number_authority = models.CharField(
        max_length=20,
        default="NHS",
        help_text="PID-3 assigning authority that marks the NHS number (or type NH).",
    )
    mrn_identifier_type = models.CharField(
        max_length=10,
        default="MR",
        help_text="PID-3 identifier type of the hospital number.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["sending_facility", "sending_application"],
                condition=models.Q(channel="mllp"),
                name="source_system_unique_mllp_sender",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def document_source(self) -> str:
        """What documents record as their source: the idempotency key's namespace."""
        return f"{self.channel}:{self.code}"

    @property
    def certificate_fingerprint(self) -> str:
        return self.certificate_sha256.replace(":", "").strip().lower()

    def audit_actor(self):
        from audit.actors import Actor

        # A source system is a client of docflow like an API key holder is.
        return Actor(
            kind="api_client", identifier=self.document_source, label=self.name[:150]
        )


class DocumentTypeMapping(models.Model):
    """A document type as a source writes it in text (TXA-2), and docflow's type for
    it; a row without a source system applies to every source."""

    source_system = models.ForeignKey(
        SourceSystem,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="document_type_mappings",
    )
    text = models.CharField(
        max_length=100, help_text="Matched case-insensitively, spaces collapsed."
    )
    document_type = models.CharField(max_length=32, choices=DocumentType.choices)

    class Meta:
        ordering = ["text"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "text"],
                name="document_type_mapping_unique_text",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.text} → {self.document_type}"
