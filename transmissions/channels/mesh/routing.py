"""Routing: which channel a document goes by, and why.

The destination profile names the channel. A sending organisation with a MESH
mailbox may also send over MESH what Connect cannot take: a payload above its
``route_oversize_above_bytes``, or (``route_when_not_connect_endpoint``) a
destination Connect does not know or does not serve (DC02, DC03). A retry keeps
the channel of its pending transmission, so one send never changes channel half way.
"""

from __future__ import annotations

from dataclasses import dataclass

from docflow.models import Channel, DestinationProfile, Document
from docflow.selectors import document_current_payload
from transmissions.models import MeshMailbox, Transmission, TransmissionState


class RouteReason:
    PROFILE = "profile"
    OVERSIZE = "oversize_for_connect"
    NOT_CONNECT_ENDPOINT = "not_connect_endpoint"
    RETRY = "retry"


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


def mesh_route_for(*, document: Document) -> MeshRoute | None:
    """MESH when the profile says so, a retry is already on MESH, or the payload is
    too large for Connect by the organisation's rule; None means Connect."""
    pending = (
        Transmission.objects.filter(document=document, state=TransmissionState.PENDING)
        .values_list("channel", "route_reason")
        .first()
    )
    if pending is not None:
        channel, reason = pending
        if channel != Channel.MESH:
            return None
        return MeshRoute(
            reason=reason or RouteReason.RETRY,
            mailbox=mesh_mailbox_for(
                sending_organisation_id=document.sending_organisation_id
            ),
        )
    mailbox = mesh_mailbox_for(sending_organisation_id=document.sending_organisation_id)
    destination = document.destination
    endpoint_type = destination.endpoint_type if destination is not None else ""
    if _profile_channel(endpoint_type) == Channel.MESH:
        return MeshRoute(reason=RouteReason.PROFILE, mailbox=mailbox)
    if mailbox is not None and mailbox.route_oversize_above_bytes:
        payload = document_current_payload(document=document)
        if (
            payload is not None
            and payload.size_bytes > mailbox.route_oversize_above_bytes
        ):
            return MeshRoute(reason=RouteReason.OVERSIZE, mailbox=mailbox)
    return None


def _profile_channel(endpoint_type: str) -> str | None:
    """The channel the destination profile for ``endpoint_type`` names, if any."""
    if not endpoint_type:
        return None
    return (
        DestinationProfile.objects.filter(endpoint_type=endpoint_type)
        .values_list("channel", flat=True)
        .first()
    )


class MeshRouteHints:
    """For a batch: whether a document (with no pending transmission) might go over
    MESH by ``mesh_route_for``'s rules, the profile's channel or a mailbox that
    routes by size, each read once per endpoint type and organisation. A yes sends
    it alone, where ``mesh_route_for`` decides."""

    def __init__(self) -> None:
        self.mailboxes: dict[int, MeshMailbox | None] = {}
        self.channels: dict[str, str | None] = {}

    def may_go_over_mesh(self, document: Document) -> bool:
        organisation_id = document.sending_organisation_id
        if organisation_id not in self.mailboxes:
            self.mailboxes[organisation_id] = mesh_mailbox_for(
                sending_organisation_id=organisation_id
            )
        mailbox = self.mailboxes[organisation_id]
        if mailbox is not None and mailbox.route_oversize_above_bytes:
            return True
        endpoint_type = document.destination.endpoint_type
        if endpoint_type not in self.channels:
            self.channels[endpoint_type] = _profile_channel(endpoint_type)
        return self.channels[endpoint_type] == Channel.MESH


def mesh_route_when_connect_refuses(
    *, document: Document, refusal: str
) -> MeshRoute | None:
    """MESH instead of holding, when Connect does not serve the destination and the
    organisation's rule allows it."""
    if refusal not in ("DC02", "DC03"):
        return None
    mailbox = mesh_mailbox_for(sending_organisation_id=document.sending_organisation_id)
    if mailbox is None or not mailbox.route_when_not_connect_endpoint:
        return None
    return MeshRoute(reason=RouteReason.NOT_CONNECT_ENDPOINT, mailbox=mailbox)


def mesh_sent_last(*, document_id: int) -> bool:
    """Whether the document's latest send that reached anyone went over MESH (MESH
    has no resend or resolve call: a resend is a new message)."""
    return (
        Transmission.objects.filter(document_id=document_id)
        .exclude(external_id="")
        .order_by("-created_at", "-id")
        .values_list("channel", flat=True)
        .first()
        == Channel.MESH
    )
