"""Every read of the document domain, filtered by what the caller may see."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import F, Prefetch, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleLessThan
from guardian.shortcuts import get_objects_for_user

from audit.models import AuditEvent
from audit.selectors import audit_events_for_target
from docflow.models import Document, PayloadVersion, SendingOrganisation

ACCESS_DOCUMENTS = "docflow.access_documents"


@dataclass(frozen=True)
class DocumentFilters:
    status: str | None = None
    destination_ods_code: str | None = None
    created_after: datetime.datetime | None = None
    created_before: datetime.datetime | None = None
    source_reference: str | None = None


def visible_sending_organisation_ids(
    *, user: Any, api_key: Any = None
) -> list[int] | None:
    """Organisations whose documents the caller may see; None means all of them.

    An API key sees exactly its own organisation. Staff see the organisations they
    were granted ``access_documents`` on (django-guardian); superusers see all.
    """
    if api_key is not None:
        return [api_key.sending_organisation_id]
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser:
        return None
    granted = get_objects_for_user(
        user, ACCESS_DOCUMENTS, klass=SendingOrganisation, accept_global_perms=True
    )
    return list(granted.values_list("id", flat=True))


def _visible_documents(*, user: Any, api_key: Any = None) -> QuerySet[Document]:
    ids = visible_sending_organisation_ids(user=user, api_key=api_key)
    queryset = Document.objects.all()
    if ids is not None:
        queryset = queryset.filter(sending_organisation_id__in=ids)
    return queryset


def document_list(
    *, user: Any, api_key: Any = None, filters: DocumentFilters | None = None
) -> QuerySet[Document]:
    """Documents the caller may see, newest first, narrowed by the filters."""
    filters = filters or DocumentFilters()
    queryset = _visible_documents(user=user, api_key=api_key).select_related(
        "sending_organisation"
    )
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.destination_ods_code:
        queryset = queryset.filter(
            destination_ods_code=filters.destination_ods_code.strip().upper()
        )
    if filters.created_after:
        queryset = queryset.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        queryset = queryset.filter(created_at__lt=filters.created_before)
    if filters.source_reference:
        queryset = queryset.filter(source_reference=filters.source_reference)
    return queryset.order_by("-created_at", "-id")


def _detail_prefetches() -> tuple:
    return (
        Prefetch(
            "payload_versions",
            queryset=PayloadVersion.objects.order_by("created_at", "id"),
        ),
        "transmissions",
    )


def document_get(*, user: Any, public_id: uuid.UUID, api_key: Any = None) -> Document:
    """One visible document with what its detail view shows; DoesNotExist otherwise.

    Another organisation's document is indistinguishable from a missing one.
    """
    return (
        _visible_documents(user=user, api_key=api_key)
        .select_related("sending_organisation", "destination")
        .prefetch_related(*_detail_prefetches())
        .get(public_id=public_id)
    )


def document_get_by_source_key(
    *, user: Any, api_key: Any, source_system: str, idempotency_key: str
) -> Document:
    """One visible document by the id its source system gave it; DoesNotExist
    otherwise (another organisation's is indistinguishable from a missing one)."""
    return _visible_documents(user=user, api_key=api_key).get(
        source_system=source_system, idempotency_key=idempotency_key
    )


def document_timeline(*, document: Document) -> QuerySet[AuditEvent]:
    """The document's journey: every audit event about it, oldest first (chain
    order; events still waiting for the audit sealer last, in the order written)."""
    return audit_events_for_target(
        target_type="document", target_id=str(document.public_id)
    ).order_by(F("sequence").asc(nulls_last=True), "id")


def document_current_payload(*, document: Document) -> PayloadVersion:
    """The newest payload version that has not been purged."""
    return (
        document.payload_versions.filter(purged_at__isnull=True)
        .order_by("-created_at", "-id")
        .first()
    )


def documents_current_payloads(*, document_ids: list[int]) -> dict[int, PayloadVersion]:
    """The newest payload version not purged, for each of several documents, in
    one query (documents with none are absent)."""
    current: dict[int, PayloadVersion] = {}
    for version in PayloadVersion.objects.filter(
        document_id__in=document_ids, purged_at__isnull=True
    ).order_by("document_id", "-created_at", "-id"):
        current.setdefault(version.document_id, version)
    return current


API_CLIENT_GROUP = "API client"


def service_accounts():
    """Accounts an API key may carry: active, not staff, not superusers, and in the
    API client group and no other, so a key never borrows a person's grants."""
    return (
        get_user_model()
        .objects.filter(
            is_active=True,
            is_staff=False,
            is_superuser=False,
            groups__name=API_CLIENT_GROUP,
        )
        .exclude(groups__in=Group.objects.exclude(name=API_CLIENT_GROUP))
        .order_by("username")
    )


@dataclass(frozen=True)
class DocumentPage:
    """Up to a page of visible documents, newest first, and where the next page
    starts (the last row's ``(created_at, id)``), or None on the last page."""

    documents: list[Document]
    next_after: tuple[datetime.datetime, int] | None


def document_list_page(
    *,
    user: Any,
    filters: DocumentFilters | None = None,
    size: int,
    after: tuple[datetime.datetime, int] | None = None,
) -> DocumentPage:
    """One page of ``document_list`` by keyset: the rows after ``(created_at, id)``,
    so page 1,000 reads no more than page 1 (by the sender's created-at index)."""
    queryset = document_list(user=user, filters=filters)
    if after is not None:
        queryset = queryset.filter(
            TupleLessThan(Tuple(F("created_at"), F("id")), after)
        )
    rows = list(queryset[: size + 1])
    documents = rows[:size]
    next_after = None
    if len(rows) > size:
        next_after = (documents[-1].created_at, documents[-1].pk)
    return DocumentPage(documents=documents, next_after=next_after)


def document_recent_events(*, document: Document, limit: int) -> tuple[list, bool]:
    """The newest ``limit`` events of a document's timeline, oldest first, and
    whether older ones were left out."""
    newest_first = document_timeline(document=document).order_by(
        F("sequence").desc(nulls_first=True), "-id"
    )
    rows = list(newest_first[: limit + 1])
    return rows[:limit][::-1], len(rows) > limit
