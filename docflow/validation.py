"""Field rules for document metadata, shared by the API serializer and the service.

Limits follow Docman Connect's DC01 validation codes, so a document we accept is not
refused by Connect for the same reason later.
"""

from __future__ import annotations

import datetime
import re

import nhs_number
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
    validate_not_future(value)
    if value < EARLIEST_BIRTH_DATE:
        raise ValidationError(
            "The date of birth is implausibly early.", code="too_early"
        )


def validate_length(field: str, value: str) -> None:
    limit, code = CONNECT_LENGTH_LIMITS[field]
    if value and len(value) > limit:
        raise ValidationError(
            f"Must be at most {limit} characters ({code}).", code="too_long"
        )
