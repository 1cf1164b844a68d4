"""Showing a work item's patient to a person who needs them to act (tracing a
REJ01 on PDS, phoning the practice), only when they ask, with a reason, logged."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.models import AccessChannel
from audit.services import access_log_record
from casework.access import can_see
from casework.errors import WorkItemInvalid, WorkItemPermissionDenied
from casework.models import WorkItem
from casework.services.recording import history_user
from docflow.models import Document

VIEW_PATIENT_IDENTITY = "docflow.view_patient_identity"
REVEAL_REASON_MAX_LENGTH = 200
ACCESS_ACTION = "reveal_patient"


@dataclass(frozen=True)
class PatientIdentity:
    """The patient as a person reads them: NHS number spaced 3-3-4, name, birth date."""

    nhs_number: str
    family_name: str
    given_names: str
    birth_date: datetime.date

    @property
    def name(self) -> str:
        return f"{self.family_name.upper()}, {self.given_names}".rstrip(", ")


def nhs_number_spaced(digits: str) -> str:
    """A 10-digit NHS number in 3-3-4 groups ("943 476 5919"), as NHS pages show it."""
    if len(digits) != 10 or not digits.isdigit():
        return digits
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


@transaction.atomic
def work_item_patient_reveal(
    *, work_item: WorkItem, actor: Any, reason: str
) -> PatientIdentity:
    """The item's patient for a person with view_patient_identity who may see the
    item, written to the access log with their reason; never stored anywhere else."""
    if history_user(actor) is None or not actor.has_perm(VIEW_PATIENT_IDENTITY):
        raise WorkItemPermissionDenied(
            "You do not have permission to see patient details.",
            code="identity_denied",
        )
    if not can_see(user=actor, work_item=work_item):
        raise WorkItemPermissionDenied("You may not see this work item.")
    reason = (reason or "").strip()
    if not reason:
        raise WorkItemInvalid(
            "Enter why you need the patient's details.", code="reason_required"
        )
    if len(reason) > REVEAL_REASON_MAX_LENGTH:
        raise WorkItemInvalid(
            f"Give a reason of at most {REVEAL_REASON_MAX_LENGTH} characters.",
            code="reason_too_long",
        )
    document = Document.objects.only(
        "public_id",
        "nhs_number",
        "patient_family_name",
        "patient_given_names",
        "patient_birth_date",
    ).get(pk=work_item.document_id)
    access_log_record(
        actor=actor,
        channel=AccessChannel.STAFF_PAGE,
        action=ACCESS_ACTION,
        target_type="document",
        target_id=str(document.public_id),
        reason=reason,
    )
    return PatientIdentity(
        nhs_number=nhs_number_spaced(document.nhs_number),
        family_name=document.patient_family_name,
        given_names=document.patient_given_names,
        birth_date=document.patient_birth_date,
    )
