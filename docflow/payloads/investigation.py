"""Investigating a failed document: its bytes, to an authorised person, with a reason.

Only documents that failed (held, rejected, system error, undelivered, outcome
unknown, or a rejection since resolved) are open to investigation this way; the
reader needs ``docflow.view_document_content``, must be able to see the sending
organisation, and gives a reason. Every disclosure is one AccessLog row (with its
chained audit event). A purged payload is refused with a clear error: the bytes are
gone, only their checksum and size remain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from audit.models import AccessChannel
from audit.services import access_log_record
from docflow.models import (
    ATTENTION_STATES,
    Document,
    DocumentStatus,
    PayloadVersion,
)
from docflow.payloads.content import VIEW_CONTENT
from docflow.payloads.store import payload_blob_read
from docflow.selectors import document_get
from docflow.services import DocumentError

INVESTIGABLE_STATES = frozenset(ATTENTION_STATES | {DocumentStatus.REJECTION_RESOLVED})
MIN_REASON_LENGTH = 3


class InvestigationRefused(DocumentError):
    """The payload is not disclosed; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class InvestigatedPayload:
    """One disclosed payload version and the access log row that records it."""

    document_id: uuid.UUID
    payload_version_id: uuid.UUID
    stage: str
    media_type: str
    file_extension: str
    sha256: str
    access_log_id: int
    content: bytes = field(repr=False)


def _version_for(
    document: Document, payload_version_id: uuid.UUID | None
) -> PayloadVersion:
    versions = document.payload_versions.all()
    if payload_version_id is not None:
        version = versions.filter(public_id=payload_version_id).first()
        if version is None:
            raise InvestigationRefused(
                "not_found", "The document has no such payload version."
            )
    else:
        version = versions.order_by("-created_at", "-id").first()
        if version is None:
            raise InvestigationRefused("not_found", "The document has no payload.")
    if version.purged_at is not None:
        raise InvestigationRefused(
            "purged",
            f"The payload was purged under the retention policy on "
            f"{version.purged_at:%Y-%m-%d}; only its checksum and size remain.",
        )
    return version


@transaction.atomic
def document_payload_investigate(
    *,
    user: Any,
    document_id: uuid.UUID,
    reason: str,
    payload_version_id: uuid.UUID | None = None,
    channel: str = AccessChannel.ADMIN,
) -> InvestigatedPayload:
    """A failed document's payload for an authorised user with a reason; logged."""
    if (
        user is None
        or not getattr(user, "is_active", False)
        or not user.has_perm(VIEW_CONTENT)
    ):
        raise InvestigationRefused(
            "forbidden", "You do not have permission to view patient content."
        )
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise InvestigationRefused(
            "reason_required", "Give the reason you need to see this content."
        )
    try:
        document = document_get(user=user, public_id=document_id)
    except Document.DoesNotExist:
        # Another organisation's document is indistinguishable from a missing one.
        raise InvestigationRefused("not_found", "No such document.") from None
    if document.status not in INVESTIGABLE_STATES:
        raise InvestigationRefused(
            "not_failed",
            f"Only failed, held or rejected documents can be investigated; this "
            f"one is {document.status}.",
        )
    version = _version_for(document, payload_version_id)
    content = payload_blob_read(
        storage_name=version.storage_name, expected_sha256=version.sha256
    )
    entry = access_log_record(
        actor=user,
        channel=channel,
        action="investigate",
        target_type="document",
        target_id=str(document.public_id),
        reason=reason,
    )
    return InvestigatedPayload(
        document_id=document.public_id,
        payload_version_id=version.public_id,
        stage=version.stage,
        media_type=version.media_type,
        file_extension=version.file_extension,
        sha256=version.sha256,
        access_log_id=entry.pk,
        content=content,
    )
