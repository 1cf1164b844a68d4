"""Information governance: a document's whole journey, look-ups by NHS number and
subject access exports.

Who may use them, and which documents they find, is docflow's rule
(docflow.ig_roles: IG officers and superusers, the documents of the sending
organisations they are granted). The audit trail and access log lists themselves hold
no patient details and are not filtered.

This app sits above transmissions and casework, so it reads their models directly.
Everything here is metadata: payload bytes are never read.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AccessChannel, AccessLog, AuditEvent
from audit.pseudonyms import subject_key
from audit.services import access_log_subject_record
from casework.models import WorkItem
from docflow.conversion.html import refused_resources_text
from docflow.ig_roles import (
    check_reason,
    may_export_subject_access,
    may_search_nhs_number,
    subject_documents,
)
from docflow.models import Document
from docflow.selectors import visible_sending_organisation_ids
from docflow.validation import normalise_nhs_number, validate_nhs_number
from transmissions.models import Transmission

# -- searching by NHS number ---------------------------------------------------------


@dataclass(frozen=True)
class SubjectSearch:
    documents: list[Document]
    work_item_ids: list[str]
    subject_key: str
    access_log: AccessLog


def ig_subject_search(*, user: Any, nhs_number: str, reason: str) -> SubjectSearch:
    """Find the documents about one NHS number; the search itself is access-logged
    under the number's keyed hash (audit.pseudonyms), never the number."""
    if not may_search_nhs_number(user):
        raise PermissionError("Only IG officers may search by NHS number.")
    validate_nhs_number(nhs_number)
    check_reason(reason)
    documents = list(subject_documents(user=user, nhs_number=nhs_number))
    work_item_ids = [
        str(public_id)
        for document in documents
        for public_id in WorkItem.objects.filter(document=document).values_list(
            "public_id", flat=True
        )
    ]
    key = subject_key(normalise_nhs_number(nhs_number))
    entry = access_log_subject_record(
        actor=user,
        channel=AccessChannel.ADMIN,
        action="search",
        subject_key=key,
        reason=reason,
        data={"documents_found": len(documents)},
    )
    return SubjectSearch(documents, work_item_ids, key, entry)


# -- a document's timeline -----------------------------------------------------------

ACTION_TITLES = {
    "document.submitted": "Created (submitted by the source system)",
    "document.mark_prepared": "Prepared for its destination",
    "document.hold_before_send": "Held before sending",
    "document.release": "Released from hold",
    "document.cancel": "Cancelled",
    "document.claim_for_sending": "Claimed for sending",
    "document.mark_received": "Received by Connect (4002)",
    "document.retry_later": "Send failed, will retry",
    "document.mark_proved_absent": "Proved absent at Connect",
    "document.hold_after_send_attempt": "Held after a send attempt",
    "document.mark_outcome_unknown": "Outcome unknown",
    "document.mark_delivered": "Delivered (4003)",
    "document.mark_accepted": "Accepted (4010)",
    "document.mark_rejected": "Rejected by the practice (4005)",
    "document.mark_system_error": "System error",
    "document.mark_undelivered": "Undelivered",
    "document.requeue": "Queued again (resend, reroute or correction)",
    "document.resolve_rejection": "Rejection resolved (6000)",
    "document.split": "Split into parts",
    "document.conversion_queued": "Queued for conversion (isolated, bounded)",
    "document.conversion_started": "Conversion started (child process, limits)",
    "document.conversion_interrupted": "Conversion interrupted, will try again",
    "document.rerouted": "Rerouted",
    "document.correction_submitted": "Corrected version submitted",
    "transmission.posted": "Posted to Connect",
    "transmission.resend_requested": "Resent (new Connect GUID)",
    "transmission.rejection_resolved": "Rejection resolved at Connect",
    "transmission.final": "Tracking finished",
}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime.datetime
    kind: str  # audit, payload, transmission, work_item, access
    title: str
    actor: str = ""
    details: list[tuple[str, Any]] = field(default_factory=list)
    sequence: int = 0  # audit order among entries at the same moment


def _details(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (
            key.replace("_", " "),
            json.dumps(value) if isinstance(value, dict | list) else value,
        )
        for key, value in data.items()
        if value not in (None, "", [], {})
    ]


def _audit_entries(events: Iterable[AuditEvent]) -> list[TimelineEntry]:
    entries = []
    for event in events:
        if event.action.startswith("content."):
            continue  # shown from the access log, with the reason given
        if event.action.startswith("work_item."):
            verb = event.action.split(".", 1)[1].replace("_", " ")
            title = f"Work item {verb}"
            if event.data.get("resolution"):
                title += f": {event.data['resolution'].replace('_', ' ')}"
        else:
            title = ACTION_TITLES.get(event.action, event.action)
        data = dict(event.data)
        if data.get("refused_resources"):
            data["refused_resources"] = refused_resources_text(
                data["refused_resources"]
            )
        if event.action.startswith("document.") and "from" in data and "to" in data:
            title = f"{title}: {data.pop('from')} → {data.pop('to')}"
        entries.append(
            TimelineEntry(
                at=event.occurred_at,
                kind="work_item" if event.target_type == "work_item" else "audit",
                title=title,
                actor=event.actor_label,
                details=[("audit event", f"#{event.sequence}"), *_details(data)],
                sequence=event.sequence,
            )
        )
    return entries


def ig_document_timeline(*, document: Document) -> list[TimelineEntry]:
    """Everything that happened to one document and everyone who looked, in order:
    audit events (its own, and its work items' with who decided what and why),
    payload versions with checksums, transmissions with GUIDs and the resend
    mapping, and the access log."""
    work_item_ids = [
        str(public_id)
        for public_id in WorkItem.objects.filter(document=document).values_list(
            "public_id", flat=True
        )
    ]
    events = AuditEvent.objects.filter(
        Q(target_type="document", target_id=str(document.public_id))
        | Q(target_type="work_item", target_id__in=work_item_ids)
    ).order_by("sequence")
    entries = _audit_entries(events)
    for version in document.payload_versions.order_by("created_at", "id"):
        entries.append(
            TimelineEntry(
                at=version.created_at,
                kind="payload",
                title=f"Payload version: {version.get_stage_display()}",
                details=_details(
                    {
                        "payload version": str(version.public_id),
                        "media type": version.media_type,
                        "size bytes": version.size_bytes,
                        "page count": version.page_count,
                        "refused external resources": refused_resources_text(
                            version.refused_resources
                        ),
                        "SHA-256": version.sha256,
                        "key id": version.key_id,
                        "purged at": version.purged_at,
                    }
                ),
            )
        )
    transmissions = (
        Transmission.objects.filter(document=document)
        .select_related("payload_version", "resend_of")
        .order_by("created_at", "id")
    )
    for transmission in transmissions:
        resend_of = transmission.resend_of
        entries.append(
            TimelineEntry(
                at=transmission.posted_at or transmission.created_at,
                kind="transmission",
                title=f"Transmission ({transmission.get_channel_display()})",
                details=_details(
                    {
                        "transmission": str(transmission.public_id),
                        "destination": transmission.destination_ods_code,
                        "payload version": str(transmission.payload_version.public_id),
                        "stage": transmission.payload_version.stage,
                        "SHA-256": transmission.payload_version.sha256,
                        "Connect GUID": transmission.external_id,
                        "state": transmission.state,
                        "status code": transmission.status_code,
                        "rejection code": transmission.rejection_code,
                        "attempts": transmission.attempts,
                        "resend of (old GUID → new GUID)": (
                            f"{resend_of.external_id} → {transmission.external_id}"
                            if resend_of is not None
                            else None
                        ),
                    }
                ),
            )
        )
    for access in access_log_for_documents(public_ids=[str(document.public_id)]):
        entries.append(
            TimelineEntry(
                at=access.occurred_at,
                kind="access",
                title=f"Content {access.action} ({access.get_channel_display()})",
                actor=access.actor_label,
                details=[("reason", access.reason)],
            )
        )
    kind_order = {
        "payload": 0,
        "audit": 1,
        "transmission": 2,
        "work_item": 3,
        "access": 4,
    }
    return sorted(
        entries, key=lambda e: (e.at, e.sequence or 0, kind_order.get(e.kind, 9))
    )


def access_log_for_documents(*, public_ids: list[str]) -> QuerySet[AccessLog]:
    return AccessLog.objects.filter(
        target_type="document", target_id__in=public_ids
    ).order_by("occurred_at", "id")


# -- subject access request ----------------------------------------------------------


def _row(instance: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


DOCUMENT_FIELDS = (
    "public_id",
    "nhs_number",
    "patient_family_name",
    "patient_given_names",
    "patient_birth_date",
    "patient_gender",
    "mrn",
    "document_type",
    "description",
    "event_date",
    "folder_name",
    "notes",
    "sender_department",
    "sender_person",
    "destination_ods_code",
    "urgent",
    "action_required",
    "medication_changed",
    "inpatient",
    "status",
    "status_changed_at",
    "status_reason",
    "part_number",
    "part_count",
    "source_reference",
    "created_at",
)
PAYLOAD_FIELDS = (
    "public_id",
    "stage",
    "media_type",
    "size_bytes",
    "sha256",
    "page_count",
    "retain_until",
    "purged_at",
    "created_at",
)
TRANSMISSION_FIELDS = (
    "public_id",
    "channel",
    "destination_ods_code",
    "state",
    "external_id",
    "status_code",
    "rejection_code",
    "attempts",
    "posted_at",
    "last_status_at",
    "created_at",
)
WORK_ITEM_FIELDS = (
    "public_id",
    "category",
    "reason_code",
    "reason_title",
    "status",
    "opened_at",
    "due_at",
    "closed_at",
    "resolution",
    "resolution_reason",
    "resolution_details",
)
ACCESS_FIELDS = (
    "occurred_at",
    "actor_kind",
    "actor_label",
    "channel",
    "action",
    "target_type",
    "reason",
)


@dataclass(frozen=True)
class SubjectAccessExport:
    filename: str
    content: bytes
    counts: dict[str, int]
    access_log: AccessLog


def ig_subject_access_export(
    *, user: Any, nhs_number: str, reason: str
) -> SubjectAccessExport:
    """Everything held about one NHS number, as one JSON file; access-logged and
    audited with who, why and how many records, under the number's keyed hash."""
    if not may_export_subject_access(user):
        raise PermissionError("Only IG officers may export a subject access request.")
    validate_nhs_number(nhs_number)
    check_reason(reason)
    digits = normalise_nhs_number(nhs_number)
    key = subject_key(digits)
    documents = list(
        subject_documents(user=user, nhs_number=digits).select_related(
            "sending_organisation", "parent", "replaces"
        )
    )
    document_rows, transmission_rows, work_item_rows = [], [], []
    for document in documents:
        row = _row(document, DOCUMENT_FIELDS)
        row["sending_organisation"] = document.sending_organisation.ods_code
        row["parent"] = document.parent.public_id if document.parent else None
        row["replaces"] = document.replaces.public_id if document.replaces else None
        row["payload_versions"] = [
            _row(version, PAYLOAD_FIELDS)
            for version in document.payload_versions.order_by("created_at", "id")
        ]
        document_rows.append(row)
        for transmission in (
            Transmission.objects.filter(document=document)
            .select_related("payload_version", "resend_of")
            .order_by("created_at", "id")
        ):
            t_row = _row(transmission, TRANSMISSION_FIELDS)
            t_row["document"] = document.public_id
            t_row["payload_version"] = transmission.payload_version.public_id
            t_row["resend_of"] = (
                transmission.resend_of.public_id if transmission.resend_of else None
            )
            transmission_rows.append(t_row)
        for item in (
            WorkItem.objects.filter(document=document)
            .select_related("closed_by")
            .order_by("opened_at", "id")
        ):
            w_row = _row(item, WORK_ITEM_FIELDS)
            w_row["document"] = document.public_id
            w_row["closed_by"] = (
                item.closed_by.get_username() if item.closed_by else None
            )
            work_item_rows.append(w_row)
    public_ids = [str(document.public_id) for document in documents]
    access_rows = [
        {**_row(entry, ACCESS_FIELDS), "target": entry.target_id}
        for entry in access_log_for_documents(public_ids=public_ids)
    ]
    # Earlier searches and exports about this patient, recorded under the same key.
    access_rows += [
        {**_row(entry, ACCESS_FIELDS), "target": "this patient"}
        for entry in AccessLog.objects.filter(
            target_type="patient", target_id=key
        ).order_by("occurred_at", "id")
    ]
    access_rows.sort(key=lambda row: row["occurred_at"])
    counts = {
        "documents": len(document_rows),
        "transmissions": len(transmission_rows),
        "work_items": len(work_item_rows),
        "access_log": len(access_rows),
    }
    organisations = visible_sending_organisation_ids(user=user)
    now = timezone.now()
    bundle = {
        "generated_at": now,
        "generated_by": user.get_username(),
        "reason": reason.strip(),
        "scope": (
            "all sending organisations"
            if organisations is None
            else "sending organisations granted to the IG officer"
        ),
        "counts": counts,
        "documents": document_rows,
        "transmissions": transmission_rows,
        "work_items": work_item_rows,
        "access_log": access_rows,
    }
    entry = access_log_subject_record(
        actor=user,
        channel=AccessChannel.ADMIN,
        action="export",
        subject_key=key,
        reason=reason,
        data={"kind": "subject_access_request", "records": counts},
    )
    content = json.dumps(bundle, cls=DjangoJSONEncoder, indent=2).encode()
    # The file name says when, never who.
    filename = f"subject-access-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}.json"
    return SubjectAccessExport(filename, content, counts, entry)
