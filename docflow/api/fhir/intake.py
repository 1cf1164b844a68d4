"""A UK Core DocumentReference read into docflow's submission, field by field.

The resource is parsed with the ``fhir.resources`` R4 models (the R4B package: its
DocumentReference, Patient and data types are R4's), then mapped:

- ``masterIdentifier.value``: the source's own id for the document; with the API
  key it is the idempotency key (and it is kept as ``source_reference``);
- ``subject.identifier`` (system ``https://fhir.nhs.uk/Id/nhs-number``): the NHS
  number; ``subject.reference`` points at a ``contained`` Patient giving the name,
  birth date, gender and, in ``generalPractitioner``, the registered practice's
  ODS code, which is the destination;
- ``type``: a SNOMED CT concept from :data:`DOCUMENT_TYPES`;
- ``description`` (else ``type.text``): the description;
- ``context.period.start`` (else ``date``): the event date;
- ``author[].display`` and ``context.practiceSetting``: sender person and department;
- ``custodian.identifier`` (ODS): must be the API key's own sending organisation;
- ``content[0].attachment``: ``contentType`` and base64 ``data`` (a ``url`` alone,
  a pointer to content elsewhere, is refused);
- ``relatesTo`` with code ``replaces``: the corrected version of an earlier document,
  named by ``DocumentReference/<id>`` or by its ``masterIdentifier``.

Every fault becomes an :class:`Issue` at the element's FHIRPath; the domain's own
validation (``document_submit``) is mapped back to the same paths.

Over 500 lines because it is one reader per element of one resource, each beside
the FHIRPath its faults are reported at.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import uuid
from dataclasses import dataclass, field

from django.utils import timezone
from fhir.resources.R4B.documentreference import DocumentReference
from pydantic import ValidationError

from docflow.api.fhir.outcomes import Issue
from docflow.api.fhir.terminology import (
    DOCUMENT_TYPES,
    GENDERS,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    ROOT,
    SNOMED_SYSTEM,
    structure_issues,
)
from docflow.services import DocumentSubmission, submission_problems
from docflow.uploads.media import ACCEPTED_MEDIA_TYPES, EXTENSION_FOR
from docflow.validation import normalise_nhs_number, normalise_ods_code

_DOCUMENT_REFERENCE_ID = re.compile(
    r"^(?:.*/)?DocumentReference/(?P<id>[0-9a-fA-F-]{32,36})$"
)


class DocumentReferenceRefused(Exception):
    """The resource cannot become a submission; ``issues`` say where and why."""

    def __init__(self, issues: list[Issue], *, status_code: int = 400) -> None:
        super().__init__(f"{len(issues)} issue(s)")
        self.issues = issues
        self.status_code = status_code


@dataclass(frozen=True)
class ReplacedDocument:
    """The document a corrected version replaces, as the resource names it."""

    expression: str
    public_id: uuid.UUID | None = None
    master_identifier: str = ""


@dataclass
class DocumentReferenceIntake:
    """What the resource asks: the submission, its key, who holds it, what it replaces.

    ``paths`` gives, for each submission field, the element it was read from, so the
    domain's refusals are answered at the element the source system sent.
    """

    submission: DocumentSubmission
    idempotency_key: str
    custodian_ods_code: str
    replaces: ReplacedDocument | None
    paths: dict[str, str] = field(default_factory=dict)

    def expression_for(self, name: str) -> str:
        return self.paths.get(name, ROOT)


def _local_date(value) -> datetime.date | None:
    """The calendar date, in the service's time zone, of a FHIR date or dateTime."""
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            return timezone.localdate(value)
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return None


def _text_of(concept) -> str:
    if concept is None:
        return ""
    if concept.text:
        return concept.text.strip()
    for coding in concept.coding or []:
        if coding.display:
            return coding.display.strip()
    return ""


def _raw_attachment_data(data: dict) -> object:
    """``content[0].attachment.data`` as sent: the model has decoded it already,
    silently dropping what is not base64."""
    try:
        return data["content"][0]["attachment"].get("data")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


class _Reader:
    """Reads one parsed resource, collecting issues instead of stopping at one."""

    def __init__(self, resource: DocumentReference, data: dict) -> None:
        self.resource = resource
        self.data = data
        self.issues: list[Issue] = []
        self.paths: dict[str, str] = {}
        self.values: dict[str, object] = {}

    def refuse(self, expression: str, code: str, detail: str) -> None:
        self.issues.append(Issue(expression, code, detail))

    def put(self, name: str, value: object, expression: str) -> None:
        self.values[name] = value
        self.paths[name] = expression

    def status(self) -> None:
        if self.resource.status != "current":
            self.refuse(
                f"{ROOT}.status",
                "invalid_choice",
                "Only a current document reference can be submitted.",
            )
        if self.resource.docStatus not in (None, "final", "amended"):
            self.refuse(
                f"{ROOT}.docStatus",
                "invalid_choice",
                "Only a final or amended document can be sent to a practice.",
            )

    def master_identifier(self) -> str:
        identifier = self.resource.masterIdentifier
        key = (identifier.value or "").strip() if identifier else ""
        path = f"{ROOT}.masterIdentifier.value"
        if not key:
            self.refuse(
                path,
                "required",
                "Give the document your own unique id; it makes resending safe.",
            )
        elif len(key) > 128:
            self.refuse(path, "max_length", "At most 128 characters.")
        else:
            self.put("source_reference", key, path)
        return key

    def patient(self) -> None:
        subject = self.resource.subject
        if subject is None:
            self.refuse(f"{ROOT}.subject", "required", "Name the patient.")
            return
        identifier = subject.identifier
        if identifier is None or identifier.system != NHS_NUMBER_SYSTEM:
            self.refuse(
                f"{ROOT}.subject.identifier",
                "required",
                f"Identify the patient by NHS number (system {NHS_NUMBER_SYSTEM}).",
            )
        else:
            self.put(
                "nhs_number",
                (identifier.value or "").strip(),
                f"{ROOT}.subject.identifier.value",
            )
        reference = (subject.reference or "").strip()
        found = None
        for index, contained in enumerate(self.resource.contained or []):
            if (
                contained.get_resource_type() == "Patient"
                and reference == f"#{contained.id}"
            ):
                found = index, contained
        if found is None:
            self.refuse(
                f"{ROOT}.subject.reference",
                "required",
                "Reference a contained Patient giving the patient's name, birth "
                "date and registered practice.",
            )
            return
        index, patient = found
        base = f"{ROOT}.contained[{index}]"
        self._patient_name(patient, base)
        self._patient_details(patient, base)
        self._registered_practice(patient, base)

    def _patient_name(self, patient, base: str) -> None:
        names = patient.name or []
        chosen = next((n for n in names if n.use == "official"), None) or (
            names[0] if names else None
        )
        index = names.index(chosen) if chosen is not None else 0
        self.put(
            "patient_family_name",
            (chosen.family or "").strip() if chosen else "",
            f"{base}.name[{index}].family",
        )
        self.put(
            "patient_given_names",
            " ".join(g.strip() for g in (chosen.given or []) if g) if chosen else "",
            f"{base}.name[{index}].given",
        )

    def _patient_details(self, patient, base: str) -> None:
        path = f"{base}.birthDate"
        birth_date = patient.birthDate
        if birth_date is not None and not isinstance(birth_date, datetime.date):
            self.refuse(path, "invalid", "A full date of birth (YYYY-MM-DD) is needed.")
        else:
            self.put("patient_birth_date", birth_date, path)
        if patient.gender:
            gender = GENDERS.get(patient.gender)
            if gender is None:
                self.refuse(
                    f"{base}.gender",
                    "invalid_choice",
                    "Not one of male, female, other, unknown.",
                )
            else:
                self.put("patient_gender", gender.value, f"{base}.gender")
        for position, identifier in enumerate(patient.identifier or []):
            if identifier.system == NHS_NUMBER_SYSTEM and (
                (identifier.value or "").strip() != self.values.get("nhs_number")
            ):
                self.refuse(
                    f"{base}.identifier[{position}].value",
                    "mismatch",
                    "The contained Patient's NHS number is not the subject's.",
                )

    def _registered_practice(self, patient, base: str) -> None:
        for position, practice in enumerate(patient.generalPractitioner or []):
            identifier = practice.identifier
            if identifier is not None and identifier.system == ODS_SYSTEM:
                self.put(
                    "destination_ods_code",
                    (identifier.value or "").strip(),
                    f"{base}.generalPractitioner[{position}].identifier.value",
                )
                return
        self.refuse(
            f"{base}.generalPractitioner",
            "required",
            f"Name the patient's registered practice by ODS code (system "
            f"{ODS_SYSTEM}); it is where the document goes.",
        )

    def document_type(self) -> None:
        concept = self.resource.type
        codings = [
            (position, coding)
            for position, coding in enumerate((concept.coding or []) if concept else [])
            if coding.system == SNOMED_SYSTEM
        ]
        if not codings:
            self.refuse(
                f"{ROOT}.type",
                "required",
                f"Give the document type as a SNOMED CT concept ({SNOMED_SYSTEM}).",
            )
            return
        for position, coding in codings:
            if coding.code in DOCUMENT_TYPES:
                self.put(
                    "document_type",
                    DOCUMENT_TYPES[coding.code][0].value,
                    f"{ROOT}.type.coding[{position}].code",
                )
                return
        allowed = ", ".join(
            f"{code} ({display})" for code, (_t, display) in DOCUMENT_TYPES.items()
        )
        self.refuse(
            f"{ROOT}.type.coding[{codings[0][0]}].code",
            "invalid_choice",
            f"Not one of the allowed document types: {allowed}.",
        )

    def description(self) -> None:
        if self.resource.description and self.resource.description.strip():
            self.put(
                "description",
                self.resource.description.strip(),
                f"{ROOT}.description",
            )
        else:
            self.put("description", _text_of(self.resource.type), f"{ROOT}.description")

    def event_date(self) -> None:
        context = self.resource.context
        start = context.period.start if context and context.period else None
        if start is not None:
            path, value = f"{ROOT}.context.period.start", start
        else:
            path, value = f"{ROOT}.date", self.resource.date
        event_date = _local_date(value)
        if value is not None and event_date is None:
            self.refuse(path, "invalid", "A full date (YYYY-MM-DD) is needed.")
            return
        self.put("event_date", event_date, path)

    def sender(self) -> None:
        for position, author in enumerate(self.resource.author or []):
            if author.display and author.display.strip():
                self.put(
                    "sender_person",
                    author.display.strip(),
                    f"{ROOT}.author[{position}].display",
                )
                break
        context = self.resource.context
        if context is not None and context.practiceSetting is not None:
            self.put(
                "sender_department",
                _text_of(context.practiceSetting),
                f"{ROOT}.context.practiceSetting",
            )

    def custodian(self) -> str:
        custodian = self.resource.custodian
        identifier = custodian.identifier if custodian else None
        if (
            identifier is None
            or identifier.system != ODS_SYSTEM
            or not identifier.value
        ):
            self.refuse(
                f"{ROOT}.custodian.identifier",
                "required",
                f"Name the sending organisation by ODS code (system {ODS_SYSTEM}).",
            )
            return ""
        return identifier.value.strip().upper()

    def content(self, *, max_bytes: int) -> None:
        contents = self.resource.content or []
        if len(contents) != 1:
            self.refuse(
                f"{ROOT}.content",
                "invalid",
                "Send exactly one content element holding the document.",
            )
            return
        base = f"{ROOT}.content[0].attachment"
        attachment = contents[0].attachment
        content_type = (attachment.contentType or "").partition(";")[0].strip().lower()
        if not content_type:
            self.refuse(f"{base}.contentType", "required", "Give the media type.")
        elif content_type not in ACCEPTED_MEDIA_TYPES:
            self.refuse(
                f"{base}.contentType",
                "invalid_choice",
                f"Not one of the accepted media types: "
                f"{', '.join(ACCEPTED_MEDIA_TYPES)}.",
            )
        else:
            self.values["declared_extension"] = EXTENSION_FOR[content_type]
        raw = _raw_attachment_data(self.data)
        if not raw:
            if attachment.url:
                self.refuse(
                    f"{base}.url",
                    "not_supported",
                    "Content by reference is not accepted; send the bytes in "
                    "attachment.data.",
                )
            else:
                self.refuse(f"{base}.data", "required", "Send the document's bytes.")
            return
        if not isinstance(raw, str):
            self.refuse(f"{base}.data", "base64", "Content is not valid base64.")
            return
        # Base64 of more than the ceiling is refused before it is decoded.
        if len(raw) > (max_bytes // 3 + 1) * 4 + 4096:
            raise DocumentReferenceRefused(
                [Issue(f"{base}.data", "too_large", f"Over {max_bytes} bytes.")],
                status_code=413,
            )
        try:
            content = base64.b64decode("".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            self.refuse(f"{base}.data", "base64", "Content is not valid base64.")
            return
        if len(content) > max_bytes:
            raise DocumentReferenceRefused(
                [Issue(f"{base}.data", "too_large", f"Over {max_bytes} bytes.")],
                status_code=413,
            )
        self.put("content", content, f"{base}.data")

    def replaces(self) -> ReplacedDocument | None:
        found: ReplacedDocument | None = None
        for position, relation in enumerate(self.resource.relatesTo or []):
            base = f"{ROOT}.relatesTo[{position}]"
            if relation.code != "replaces":
                self.refuse(
                    f"{base}.code",
                    "invalid_choice",
                    "Only 'replaces' (a corrected version) is accepted.",
                )
                continue
            if found is not None:
                self.refuse(
                    base, "invalid", "A corrected version replaces one document."
                )
                continue
            target = relation.target
            match = _DOCUMENT_REFERENCE_ID.match((target.reference or "").strip())
            if match:
                try:
                    found = ReplacedDocument(
                        expression=f"{base}.target.reference",
                        public_id=uuid.UUID(match.group("id")),
                    )
                except ValueError:
                    match = None
            if match:
                continue
            identifier = target.identifier
            if identifier is not None and (identifier.value or "").strip():
                found = ReplacedDocument(
                    expression=f"{base}.target.identifier.value",
                    master_identifier=identifier.value.strip(),
                )
                continue
            self.refuse(
                f"{base}.target",
                "invalid",
                "Name the replaced document as DocumentReference/<id> or by its "
                "masterIdentifier.",
            )
        return found


# Submission fields that must be present for the domain to judge them; an absent
# one is refused there with its own "required" at the element it comes from.
_FIELD_DEFAULTS = {
    "nhs_number": "",
    "patient_family_name": "",
    "patient_birth_date": None,
    "document_type": "",
    "description": "",
    "event_date": None,
    "destination_ods_code": "",
    "content": b"",
}
# Where a field the resource did not give would have come from.
_FALLBACK_PATHS = {
    "patient_birth_date": f"{ROOT}.contained.birthDate",
    "event_date": f"{ROOT}.context.period.start",
    "idempotency_key": f"{ROOT}.masterIdentifier.value",
    "content": f"{ROOT}.content[0].attachment.data",
}


def document_reference_intake(
    data: object, *, max_bytes: int
) -> DocumentReferenceIntake:
    """The submission a DocumentReference asks for, or DocumentReferenceRefused."""
    if not isinstance(data, dict) or data.get("resourceType") != "DocumentReference":
        raise DocumentReferenceRefused(
            [Issue("resourceType", "invalid", "Send a DocumentReference resource.")]
        )
    try:
        resource = DocumentReference.model_validate(data)
    except ValidationError as error:
        raise DocumentReferenceRefused(structure_issues(error)) from None
    reader = _Reader(resource, data)
    reader.status()
    key = reader.master_identifier()
    reader.patient()
    reader.document_type()
    reader.description()
    reader.event_date()
    reader.sender()
    custodian = reader.custodian()
    reader.content(max_bytes=max_bytes)
    replaces = reader.replaces()
    intake = DocumentReferenceIntake(
        submission=DocumentSubmission(**{**_FIELD_DEFAULTS, **reader.values}),
        idempotency_key=key,
        custodian_ods_code=custodian,
        replaces=replaces,
        paths={**_FALLBACK_PATHS, **reader.paths},
    )
    if reader.issues:
        # Answer every fault at once: the domain's rules too, for what was read.
        raise DocumentReferenceRefused(
            reader.issues + _domain_issues(intake, judged=set(reader.paths))
        )
    return intake


def _domain_issues(intake: DocumentReferenceIntake, *, judged: set[str]) -> list[Issue]:
    """The domain's refusals of the fields the resource gave (absent ones are
    already refused at the element they belong in)."""
    submission = intake.submission
    submission.nhs_number = normalise_nhs_number(submission.nhs_number)
    submission.destination_ods_code = normalise_ods_code(
        submission.destination_ods_code
    )
    return [
        Issue(intake.expression_for(name), code, message)
        for name, problems in submission_problems(submission).items()
        if name in judged
        for code, message in problems
        if code != "required"
    ]
