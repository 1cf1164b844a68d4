"""Who may use the information governance screens, and what they may find.

Who: IG officers (the "IG officer" group) and superusers; searching by NHS number and
subject access exports also need the role's ``docflow.search_nhs_number`` and
``docflow.export_subject_access`` permissions. What they see follows the
same rule as everyone else (DESIGN §6): documents of the sending organisations they
are granted ``docflow.access_documents`` on; superusers see all. The timeline, the
search and the export themselves read transmissions and work items, so they live in
the governance app above both (governance.ig).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from audit.redaction import redact_nhs_numbers
from docflow.models import Document
from docflow.selectors import visible_sending_organisation_ids
from docflow.validation import normalise_nhs_number

# Granted to the IG officer role only (docflow migration 0003); superusers have all.
SEARCH_NHS_NUMBER = "docflow.search_nhs_number"
EXPORT_SUBJECT_ACCESS = "docflow.export_subject_access"


def ig_officer_group() -> str:
    return getattr(settings, "DOCFLOW_IG_OFFICER_GROUP", "IG officer")


def is_ig_officer(user: Any) -> bool:
    """Superusers and members of the IG officer group, if active staff."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if not user.is_active or not user.is_staff:
        return False
    return user.is_superuser or user.groups.filter(name=ig_officer_group()).exists()


def may_search_nhs_number(user: Any) -> bool:
    """An IG officer whose role carries the search permission."""
    return is_ig_officer(user) and user.has_perm(SEARCH_NHS_NUMBER)


def may_export_subject_access(user: Any) -> bool:
    """An IG officer whose role carries the subject access export permission."""
    return is_ig_officer(user) and user.has_perm(EXPORT_SUBJECT_ACCESS)


def _visible_documents(*, user: Any) -> QuerySet[Document]:
    ids = visible_sending_organisation_ids(user=user)
    queryset = Document.objects.all()
    if ids is not None:
        queryset = queryset.filter(sending_organisation_id__in=ids)
    return queryset


def ig_document_get(*, user: Any, public_id: uuid.UUID) -> Document:
    """One document an IG officer may see; DoesNotExist for anything else."""
    if not is_ig_officer(user):
        raise Document.DoesNotExist
    return (
        _visible_documents(user=user)
        .select_related("sending_organisation", "destination", "parent", "replaces")
        .get(public_id=public_id)
    )


def subject_documents(*, user: Any, nhs_number: str) -> QuerySet[Document]:
    """Documents about one NHS number that the IG officer may see, oldest first."""
    if not is_ig_officer(user):
        return Document.objects.none()
    return (
        _visible_documents(user=user)
        .filter(nhs_number=normalise_nhs_number(nhs_number))
        .select_related("sending_organisation")
        .order_by("created_at", "id")
    )


def check_reason(reason: str) -> None:
    """A reason is required, and goes into the audit chain: no NHS number in it."""
    if not (reason or "").strip():
        raise ValueError("A reason is required to look up a patient.")
    if redact_nhs_numbers(reason) != reason:
        raise ValueError("Leave the NHS number out of the reason: it is recorded.")
