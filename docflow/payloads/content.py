"""Seeing a document's content: the one way the API and the staff pages hand out
patient bytes, with the permission, a reason and an access-log row every time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse

from audit.services import access_log_record
from docflow.errors import ContentForbidden, ContentPurged
from docflow.models import Document
from docflow.payloads.store import payload_blob_read
from docflow.selectors import document_current_payload

VIEW_CONTENT = "docflow.view_document_content"


def may_view_content(user: Any) -> bool:
    """Roles carrying ``docflow.view_document_content`` may see patient content."""
    return user.has_perm(VIEW_CONTENT)


@dataclass(frozen=True)
class DocumentContent:
    content: bytes
    media_type: str
    file_name: str


def document_content_view(
    *,
    document: Document,
    user: Any,
    actor: Any,
    channel: str,
    action: str,
    reason: str,
) -> DocumentContent:
    """The current bytes of a document the caller already found visible, for a user
    with the content permission, access-logged (actor, channel, action, reason)
    before they are read; ContentForbidden without the permission, ContentPurged
    when no payload is left."""
    if not may_view_content(user):
        raise ContentForbidden("You do not have permission to view patient content.")
    payload = document_current_payload(document=document)
    if payload is None:
        raise ContentPurged("The document's content has been purged.")
    access_log_record(
        actor=actor,
        channel=channel,
        action=action,
        target_type="document",
        target_id=str(document.public_id),
        reason=reason,
    )
    content = payload_blob_read(
        storage_name=payload.storage_name, expected_sha256=payload.sha256
    )
    return DocumentContent(
        content=content,
        media_type=payload.media_type,
        file_name=f"{document.public_id}.{payload.file_extension}",
    )


def document_content_response(
    document_content: DocumentContent, *, disposition: str
) -> HttpResponse:
    """The bytes as an ``inline`` or ``attachment`` answer that no cache keeps and
    no browser sniffs into another type."""
    response = HttpResponse(
        document_content.content, content_type=document_content.media_type
    )
    response["Content-Disposition"] = (
        f'{disposition}; filename="{document_content.file_name}"'
    )
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
