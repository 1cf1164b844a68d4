"""Field rules for document metadata, shared by the API serializer and the service.

Limits follow Docman Connect's DC01 validation codes, so a document we accept is not
refused by Connect for the same reason later.

Identifiers only in patient fields: a valid NHS number (ten digits passing modulus
11, also written 3-3-4 with spaces or hyphens) is refused wherever it stands as a
word of its own in a field that is not the patient's, and in the idempotency key,
because those values live on in audit events, roll-ups, logs and URLs. The
patient's NHS number must not be a placeholder (all one digit) nor, unless
DOCFLOW_ALLOW_TEST_NHS_NUMBERS is on, of the never-issued test range. An event
cannot precede the birth; a birth before 1900 is accepted with a warning (codes and
fields, never values). Every message says what is wrong with a field without
repeating what was sent.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass

import nhs_number
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")

# (field, max length, Connect code)
CONNECT_LENGTH_LIMITS: dict[str, tuple[int, str]] = {
    "notes": (255, "DC01.03"),
    "sender_department": (255, "DC01.05"),
    "sender_person": (255, "DC01.06"),
    "patient_family_name": (255, "DC01.07"),
    "patient_given_names": (255, "DC01.08"),
    "description": (255, "DC01.43"),
    "folder_name": (50, "DC01.42"),
    "mrn": (255, "MRN"),
    "source_reference": (255, "REF"),
}
EARLIEST_BIRTH_DATE = datetime.date(1880, 1, 1)
# Born before this, a patient would be well over 120: accepted, with a warning.
PLAUSIBLE_BIRTH_DATE = datetime.date(1900, 1, 1)

# Fields that describe the patient; every other text field of a submission, and the
# idempotency key, must never carry an NHS number (they end up in audit events,
# roll-ups, logs and lists that are not guarded as patient data).
PATIENT_FIELDS = frozenset(
    {"nhs_number", "patient_family_name", "patient_given_names", "mrn"}
)
NON_PATIENT_TEXT_FIELDS = (
    "description",
    "notes",
    "folder_name",
    "sender_department",
    "sender_person",
    "destination_ods_code",
    "source_reference",
)
# The patient's own text fields (the NHS number has rules of its own): one line.
PATIENT_TEXT_FIELDS = ("patient_family_name", "patient_given_names", "mrn")
# Free text: line breaks and tabs are text; in every other field they are not.
MULTILINE_FIELDS = frozenset({"notes"})

# Ten digits, alone or grouped 3-3-4 by one kind of separator, standing as a word of
# their own (not inside a run of letters and digits): how an NHS number is written
# wherever it is written. Digits inside an opaque id ("d6571420864f", a UUID's hex)
# are not taken for one: about one run of ten digits in eleven passes modulus 11.
_NHS_NUMBER_TOKEN = re.compile(
    r"(?<![0-9A-Za-z])[0-9]{3}([ -]?)[0-9]{3}\1[0-9]{4}(?![0-9A-Za-z])"
)
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MULTILINE_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def normalise_nhs_number(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "")


def validate_nhs_number(value: str) -> None:
    """Ten digits with a valid modulus 11 check digit."""
    digits = normalise_nhs_number(value)
    if not re.fullmatch(r"[0-9]{10}", digits):
        raise ValidationError("Enter a 10-digit NHS number.", code="nhs_number_format")
    if not nhs_number.is_valid(digits):
        raise ValidationError(
            "The NHS number's check digit is wrong.", code="nhs_number_checksum"
        )


def is_test_nhs_number(digits: str) -> bool:
    """In 900 000 0000 - 999 999 9999: never issued, kept for test and synthetic
    patients (PDS's test patients; NHS England's 999 range within it)."""
    return nhs_number.REGION_SYNTHETIC.contains_number(digits)


def validate_patient_nhs_number(value: str) -> None:
    """A patient's NHS number: valid, and not a placeholder. All one digit passes
    modulus 11 (0000000000, 1111111111, ...) and is always refused; numbers of the
    test range are refused unless ``DOCFLOW_ALLOW_TEST_NHS_NUMBERS`` is on."""
    validate_nhs_number(value)
    digits = normalise_nhs_number(value)
    if len(set(digits)) == 1:
        raise ValidationError(
            "A placeholder NHS number (all one digit) is not a patient's.",
            code="nhs_number_placeholder",
        )
    if is_test_nhs_number(digits) and not settings.DOCFLOW_ALLOW_TEST_NHS_NUMBERS:
        raise ValidationError(
            "NHS numbers of the test range are not accepted here.",
            code="nhs_number_test_range",
        )


def contains_nhs_number(value: str) -> bool:
    """Whether the text holds a valid NHS number written as one (see the token)."""
    if not value or not any(c.isdigit() for c in value):
        return False
    return any(
        nhs_number.is_valid(re.sub(r"[ -]", "", match.group(0)))
        for match in _NHS_NUMBER_TOKEN.finditer(value)
    )


def validate_no_nhs_number(value: str) -> None:
    """A field that is not the patient's must not hold an NHS number. The message
    never repeats the value."""
    if contains_nhs_number(value):
        raise ValidationError(
            "This field holds what is an NHS number; patient identifiers belong "
            "only in the patient's fields.",
            code="nhs_number_not_allowed",
        )


def validate_single_line(value: str) -> None:
    """No control characters (NUL, line breaks, escapes) in a one-line field."""
    if value and _CONTROL_CHARACTER.search(value):
        raise ValidationError(
            "Control characters are not allowed in this field.",
            code="control_character",
        )


def validate_free_text(value: str) -> None:
    """Free text may break lines and hold tabs; other control characters are refused."""
    if value and _MULTILINE_CONTROL_CHARACTER.search(value):
        raise ValidationError(
            "Control characters are not allowed in this field.",
            code="control_character",
        )


def normalise_ods_code(value: str) -> str:
    return (value or "").strip().upper()


def validate_ods_code(value: str) -> None:
    """3 to 10 letters and digits (DC01.21 / DC01.22)."""
    if not ODS_CODE.fullmatch(normalise_ods_code(value)):
        raise ValidationError(
            "Enter an ODS code of 3 to 10 letters and digits.", code="ods_code_format"
        )


def validate_not_future(value: datetime.date) -> None:
    """Dates of events and births cannot be in the future (DC01.09)."""
    if value > timezone.localdate():
        raise ValidationError("The date cannot be in the future.", code="future_date")


def validate_birth_date(value: datetime.date) -> None:
    """Not in the future, not before 1880 (before 1900 is only warned about)."""
    validate_not_future(value)
    if value < EARLIEST_BIRTH_DATE:
        raise ValidationError(
            "The date of birth is implausibly early.", code="too_early"
        )


def validate_event_after_birth(
    *, event_date: datetime.date | None, birth_date: datetime.date | None
) -> None:
    """A document's event cannot come before the patient was born."""
    if event_date and birth_date and event_date < birth_date:
        raise ValidationError(
            "The event date is before the patient's date of birth.",
            code="event_before_birth",
        )


@dataclass(frozen=True)
class IntakeWarning:
    """Something accepted that a person should look at: a field and a code, never
    the value."""

    field: str
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "detail": self.detail}


def birth_date_warnings(value: datetime.date | None) -> list[IntakeWarning]:
    """A birth date before 1900 is accepted, and said to be implausible."""
    if value and value < PLAUSIBLE_BIRTH_DATE:
        return [
            IntakeWarning(
                field="patient_birth_date",
                code="birth_date_before_1900",
                detail="The date of birth is before 1900; check it is right.",
            )
        ]
    return []


def validate_length(field: str, value: str) -> None:
    limit, code = CONNECT_LENGTH_LIMITS[field]
    if value and len(value) > limit:
        raise ValidationError(
            f"Must be at most {limit} characters ({code}).", code="too_long"
        )


def text_field_rules(field: str) -> tuple[Callable[[str], None], ...]:
    """A submission's text field's rules beyond its length: one line (free text may
    break lines), and no NHS number unless the field is the patient's."""
    if field in PATIENT_TEXT_FIELDS:
        return (validate_single_line,)
    if field in MULTILINE_FIELDS:
        return (validate_free_text, validate_no_nhs_number)
    if field in NON_PATIENT_TEXT_FIELDS:
        return (validate_single_line, validate_no_nhs_number)
    return ()


IDEMPOTENCY_KEY_MAX_LENGTH = 128


def idempotency_key_problems(key: str) -> list[tuple[str, str]]:
    """(code, message) for each rule the key breaks: 1 to 128 characters, one line,
    never a patient identifier (keys are kept for ever in audit events and logs).
    The one check of a key: the API reports these before intake, intake refuses them."""
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        code = "required" if not key else "max_length"
        return [(code, "An Idempotency-Key of 1 to 128 characters is required.")]
    problems = []
    for rule in (validate_single_line, validate_no_nhs_number):
        try:
            rule(key)
        except ValidationError as exc:
            problems.append((exc.code or "invalid", exc.messages[0]))
    return problems
