"""MESH's routing rules: the route a document takes over MESH, and when MESH
takes a document another channel's profile names.

The registry (``transmissions.channels``) picks the channel: a pending retry's
channel, else the destination profile's. A sending organisation with a MESH
mailbox may also send over MESH what Connect cannot take: a payload above its
``route_oversize_above_bytes`` (``mesh_route_instead``), or
(``route_when_not_connect_endpoint``) a destination Connect does not know or does
not serve, DC02 or DC03 (``mesh_route_when_refused``).
"""

from __future__ import annotations

from dataclasses import dataclass

from docflow.models import Document
from docflow.selectors import document_current_payload
from transmissions.engine.channel import RouteReason as EngineRouteReason
from transmissions.models import MeshMailbox


class RouteReason(EngineRouteReason):
    """The engine's reasons, and MESH's own rules."""

    OVERSIZE = "oversize_for_connect"
    NOT_CONNECT_ENDPOINT = "not_connect_endpoint"


@dataclass(frozen=True)
class MeshRoute:
    """Send this document over MESH through ``mailbox`` (None: none configured)."""

    reason: str
    mailbox: MeshMailbox | None


def mesh_mailbox_for(*, sending_organisation_id: int) -> MeshMailbox | None:
    """The organisation's active MESH mailbox, if it has one."""
    return MeshMailbox.objects.filter(
        sending_organisation_id=sending_organisation_id, is_active=True
    ).first()


def mesh_route(*, document: Document, reason: str) -> MeshRoute:
    """The route over MESH for a document MESH was chosen for: the organisation's
    active mailbox (None: none configured, and the document is held)."""
    return MeshRoute(
        reason=reason,
        mailbox=mesh_mailbox_for(
            sending_organisation_id=document.sending_organisation_id
        ),
    )


def mesh_route_instead(*, document: Document) -> MeshRoute | None:
    """MESH for a payload too large for Connect by the organisation's rule."""
    mailbox = mesh_mailbox_for(sending_organisation_id=document.sending_organisation_id)
    if mailbox is None or not mailbox.route_oversize_above_bytes:
        return None
    payload = document_current_payload(document=document)
    if payload is not None and payload.size_bytes > mailbox.route_oversize_above_bytes:
        return MeshRoute(reason=RouteReason.OVERSIZE, mailbox=mailbox)
    return None


def mesh_may_route_instead(*, document: Document, cache: dict) -> bool:
    """For a batch: whether ``mesh_route_instead`` might take the document (its
    organisation's mailbox routes by size), the mailbox read once per
    organisation in ``cache``."""
    organisation_id = document.sending_organisation_id
    if organisation_id not in cache:
        cache[organisation_id] = mesh_mailbox_for(
            sending_organisation_id=organisation_id
        )
    mailbox = cache[organisation_id]
    return mailbox is not None and bool(mailbox.route_oversize_above_bytes)


def mesh_route_when_refused(*, document: Document, refusal: str) -> MeshRoute | None:
    """MESH instead of holding, when Connect does not serve the destination and the
    organisation's rule allows it."""
    if refusal not in ("DC02", "DC03"):
        return None
    mailbox = mesh_mailbox_for(sending_organisation_id=document.sending_organisation_id)
    if mailbox is None or not mailbox.route_when_not_connect_endpoint:
        return None
    return MeshRoute(reason=RouteReason.NOT_CONNECT_ENDPOINT, mailbox=mailbox)
