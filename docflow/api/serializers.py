"""API input and output shapes; validators are the domain's own (docflow.validation)."""

from __future__ import annotations

import base64
import binascii
import copy
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from audit.models import AuditEvent
from docflow.models import (
    Document,
    DocumentStatus,
    DocumentType,
    Gender,
    PayloadVersion,
)
from docflow.services import VettedContent
from docflow.uploads.media import MediaRefused, vet_upload
from docflow.validation import (
    text_field_rules,
    validate_birth_date,
    validate_event_after_birth,
    validate_no_nhs_number,
    validate_not_future,
    validate_ods_code,
    validate_patient_nhs_number,
    validate_single_line,
)


def _rules(field: str) -> list:
    """The domain's rules for a text field (one line, no NHS number where it is
    not the patient's), so the API lists them with every other field error."""
    return list(text_field_rules(field))


def _choice_errors(what: str, choices) -> dict[str, str]:
    """A choice error that lists what is allowed and never repeats what was sent."""
    allowed = ", ".join(str(value) for value, _label in choices)
    return {"invalid_choice": f"Not one of the allowed {what}: {allowed}."}


class ContentTooLarge(Exception):
    """Decoded content is over the intake ceiling (answered with 413)."""


def _vet_or_fail(content: bytes, extension: str) -> VettedContent:
    """Type and unsafe content, checked once: intake reuses what this found."""
    try:
        media = vet_upload(content, declared_extension=extension)
    except MediaRefused as refused:
        raise serializers.ValidationError(refused.message, code=refused.code) from None
    return VettedContent(declared_extension=extension, media=media)


def _extension_of(file_name: str) -> str:
    return PurePath(file_name or "").suffix.lstrip(".").lower()


class TextField(serializers.CharField):
    """Text, and only text: a JSON number or boolean where text belongs is refused
    (DRF's CharField turns numbers into strings), as the schema says."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _optional_text(field: str, *, max_length: int = 255, **kwargs) -> TextField:
    """An optional text field with the domain's rules for ``field`` (blank is "")."""
    return TextField(
        max_length=max_length,
        required=False,
        allow_blank=True,
        default="",
        validators=_rules(field),
        **kwargs,
    )


class _AsciiAwareSurrogateValidator(ProhibitSurrogateCharactersValidator):
    """DRF's check, minus its per-character scan of text that is plain ASCII."""

    def __call__(self, value) -> None:
        # The scan costs ~5 ms per 100 KB of base64; ASCII text holds no surrogates.
        if isinstance(value, str) and value.isascii():
            return
        super().__call__(value)


class Base64ContentField(TextField):
    """Base64 text of any size; validated like any CharField, only faster."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.validators = [
            _AsciiAwareSurrogateValidator()
            if type(validator) is ProhibitSurrogateCharactersValidator
            else validator
            for validator in self.validators
        ]


class _ShallowFieldCopies:
    """Gives each serializer instance shallow copies of the declared fields.

    DRF deep-copies them, which re-runs every field's ``__init__`` (over 20 fields,
    ~0.4 ms per intake request). The copy is what DRF binds to the instance (name,
    parent, source); what copies share is configuration set at declaration time
    (validators, choices, error messages), which nothing changes afterwards.
    """

    def get_fields(self):
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


class DocumentMetadataSerializer(_ShallowFieldCopies, serializers.Serializer):
    nhs_number = TextField(max_length=12, validators=[validate_patient_nhs_number])
    patient_family_name = TextField(
        max_length=255, validators=_rules("patient_family_name")
    )
    patient_given_names = _optional_text("patient_given_names")
    patient_birth_date = serializers.DateField(validators=[validate_birth_date])
    patient_gender = serializers.ChoiceField(
        choices=Gender.choices,
        required=False,
        allow_blank=True,
        default="",
        error_messages=_choice_errors("genders", Gender.choices),
    )
    mrn = _optional_text("mrn")
    document_type = serializers.ChoiceField(
        choices=DocumentType.choices,
        error_messages=_choice_errors("document types", DocumentType.choices),
    )
    description = TextField(max_length=255, validators=_rules("description"))
    event_date = serializers.DateField(
        validators=[validate_not_future],
        help_text="Not in the future, and not before the patient's date of birth.",
    )
    folder_name = _optional_text("folder_name", max_length=50)
    notes = _optional_text("notes", help_text="Free text; no patient identifiers.")
    sender_department = _optional_text("sender_department")
    sender_person = _optional_text("sender_person")
    destination_ods_code = TextField(
        max_length=10, validators=[validate_ods_code, *_rules("destination_ods_code")]
    )
    source_reference = _optional_text(
        "source_reference",
        help_text="The source system's own reference (no patient identifiers).",
    )
    urgent = serializers.BooleanField(required=False, default=False)
    action_required = serializers.BooleanField(required=False, default=False)
    medication_changed = serializers.BooleanField(required=False, default=False)
    inpatient = serializers.BooleanField(required=False, default=False)
    file_name = TextField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        validators=[validate_single_line],
        help_text="Used only for its extension, which must agree with the content.",
    )

    def validate(self, attrs):
        try:
            validate_event_after_birth(
                event_date=attrs.get("event_date"),
                birth_date=attrs.get("patient_birth_date"),
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                {"event_date": [exc.messages[0]]}, code=exc.code
            ) from None
        return attrs


class DocumentJsonIntakeSerializer(DocumentMetadataSerializer):
    content = Base64ContentField(
        help_text="The document bytes, base64-encoded.", trim_whitespace=True
    )

    def validate_content(self, value: str) -> bytes:
        try:
            content = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError(
                "Content is not valid base64.", code="base64"
            ) from None
        if len(content) > settings.DOCFLOW_MAX_UPLOAD_BYTES:
            raise ContentTooLarge
        extension = _extension_of(str(self.initial_data.get("file_name", "")))
        self.vetted_content = _vet_or_fail(content, extension)
        return content


class DocumentMultipartIntakeSerializer(DocumentMetadataSerializer):
    file = serializers.FileField(help_text="The document file.")

    def validate_file(self, value) -> bytes:
        if value.size > settings.DOCFLOW_MAX_UPLOAD_BYTES:
            raise ContentTooLarge
        content = value.read()
        if not self.initial_data.get("file_name"):
            self.initial_data_file_name = value.name
        self.vetted_content = _vet_or_fail(content, _extension_of(value.name))
        return content

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["content"] = attrs.pop("file")
        attrs["file_name"] = attrs.get("file_name") or getattr(
            self, "initial_data_file_name", ""
        )
        return attrs


class TimelineEntrySerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    at = serializers.DateTimeField(source="occurred_at")
    action = serializers.CharField()
    actor_kind = serializers.CharField()
    actor = serializers.CharField(source="actor_label")
    from_status = serializers.SerializerMethodField()
    to_status = serializers.SerializerMethodField()

    def get_from_status(self, event) -> str | None:
        return event.data.get("from")

    def get_to_status(self, event) -> str | None:
        return event.data.get("to")


class TransmissionSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    channel = serializers.CharField()
    destination_ods_code = serializers.CharField()
    external_id = serializers.CharField()
    status_code = serializers.IntegerField(allow_null=True)
    rejection_code = serializers.CharField()
    attempts = serializers.IntegerField()
    resend_of = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_resend_of(self, transmission) -> str | None:
        return (
            str(transmission.resend_of.public_id) if transmission.resend_of_id else None
        )


class PayloadVersionSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    stage = serializers.CharField()
    media_type = serializers.CharField()
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    page_count = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class DocumentSummarySerializer(serializers.Serializer):
    """Metadata only: never patient identifiers or content."""

    id = serializers.UUIDField(source="public_id")
    status = serializers.ChoiceField(choices=DocumentStatus.choices)
    status_changed_at = serializers.DateTimeField()
    status_reason = serializers.CharField()
    sending_organisation = serializers.CharField(source="sending_organisation.ods_code")
    destination_ods_code = serializers.CharField()
    document_type = serializers.CharField()
    source_reference = serializers.CharField()
    created_at = serializers.DateTimeField()


class IntakeWarningSerializer(serializers.Serializer):
    """Accepted, but for a person to check (a birth date before 1900, say)."""

    field = serializers.CharField()
    code = serializers.CharField()
    detail = serializers.CharField()


def _submission_warnings(events) -> list[dict]:
    """The warnings intake recorded on the document's submission event."""
    for event in events:
        if event.action == "document.submitted":
            return list(event.data.get("warnings", []))
    return []


class DocumentDetailSerializer(DocumentSummarySerializer):
    warnings = serializers.SerializerMethodField()
    parent = serializers.SerializerMethodField()
    replaces = serializers.SerializerMethodField()
    payload_versions = PayloadVersionSerializer(many=True)
    transmissions = TransmissionSerializer(many=True)
    timeline = serializers.SerializerMethodField()

    @extend_schema_field(IntakeWarningSerializer(many=True))
    def get_warnings(self, document: Document) -> list[dict]:
        return _submission_warnings(self.context["timeline"])

    def get_parent(self, document: Document) -> str | None:
        return str(document.parent.public_id) if document.parent_id else None

    def get_replaces(self, document: Document) -> str | None:
        return str(document.replaces.public_id) if document.replaces_id else None

    @extend_schema_field(TimelineEntrySerializer(many=True))
    def get_timeline(self, document: Document) -> list[dict]:
        events = self.context["timeline"]
        return TimelineEntrySerializer(events, many=True).data


# Unbound, only to format datetimes exactly as the serializers' own fields do.
_DATETIME = serializers.DateTimeField()


def new_document_detail(
    *, document: Document, payload_version: PayloadVersion, audit_event: AuditEvent
) -> dict:
    """DocumentDetailSerializer's body for a document intake has just created.

    Built from the rows intake wrote: one payload version, no transmissions and one
    timeline event. Building the serializer instead costs ~60 field instances per
    request; tests hold both bodies equal, field for field.
    """
    moment = _DATETIME.to_representation
    return {
        "id": str(document.public_id),
        "status": str(document.status),
        "status_changed_at": moment(document.status_changed_at),
        "status_reason": str(document.status_reason),
        "sending_organisation": str(document.sending_organisation.ods_code),
        "destination_ods_code": str(document.destination_ods_code),
        "document_type": str(document.document_type),
        "source_reference": str(document.source_reference),
        "created_at": moment(document.created_at),
        "warnings": _submission_warnings([audit_event]),
        "parent": str(document.parent.public_id) if document.parent_id else None,
        "replaces": (
            str(document.replaces.public_id) if document.replaces_id else None
        ),
        "payload_versions": [
            {
                "id": str(payload_version.public_id),
                "stage": str(payload_version.stage),
                "media_type": str(payload_version.media_type),
                "size_bytes": int(payload_version.size_bytes),
                "sha256": str(payload_version.sha256),
                "page_count": (
                    None
                    if payload_version.page_count is None
                    else int(payload_version.page_count)
                ),
                "created_at": moment(payload_version.created_at),
            }
        ],
        "transmissions": [],
        "timeline": [
            {
                # None until the audit sealer chains the event (seconds).
                "sequence": (
                    None if audit_event.sequence is None else int(audit_event.sequence)
                ),
                "at": moment(audit_event.occurred_at),
                "action": str(audit_event.action),
                "actor_kind": str(audit_event.actor_kind),
                "actor": str(audit_event.actor_label),
                "from_status": audit_event.data.get("from"),
                "to_status": audit_event.data.get("to"),
            }
        ],
    }


class DocumentListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=DocumentStatus.choices,
        required=False,
        error_messages=_choice_errors("statuses", DocumentStatus.choices),
    )
    # Query strings end up in access logs: never a patient identifier in them.
    destination = serializers.CharField(
        max_length=10, required=False, validators=_rules("destination_ods_code")
    )
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    source_reference = serializers.CharField(
        max_length=255, required=False, validators=_rules("source_reference")
    )
    cursor = serializers.CharField(
        required=False, help_text="Opaque position from a previous page's links."
    )
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=200, help_text="Default 50."
    )


class DocumentPageSerializer(serializers.Serializer):
    """One page of the document list; follow ``next`` for older documents."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DocumentSummarySerializer(many=True)


class ContentQuerySerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500,
        min_length=3,
        validators=[validate_no_nhs_number],
        help_text=(
            "Why you need to see patient content; recorded in the access log. "
            "Sent in the request body; never a patient identifier."
        ),
    )


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField(required=False)
    errors = serializers.ListField(child=serializers.DictField(), required=False)
