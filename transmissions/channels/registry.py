"""The channel registry: every channel's object, keyed by the destination profile's
channel (``DestinationProfile.channel``), and the rule that picks one for a
document. A third channel (print and post, say) is one new package with a
``channel`` module, one line in ``CHANNELS`` and a destination profile naming it
(a new ``docflow.models.Channel`` value).

Which channel a document goes by (``document_route``): the channel of its pending
transmission (a retry never changes channel half way), else the channel its
destination profile names, else one that claims it by its own rule (MESH: a
payload too large for Connect), else the default (Connect).
"""

from __future__ import annotations

from docflow.models import Channel, DestinationProfile, Document
from transmissions.channels.connect.channel import CONNECT
from transmissions.channels.mesh.channel import MESH
from transmissions.engine.channel import ChannelRoute, RouteReason, SendChannel
from transmissions.models import Transmission, TransmissionState

CHANNELS: dict[str, SendChannel] = {
    Channel.CONNECT: CONNECT,
    Channel.MESH: MESH,
}
DEFAULT: SendChannel = CONNECT


def channel_named(name: str) -> SendChannel:
    """The channel a transmission or profile names (unknown names: the default)."""
    return CHANNELS.get(name, DEFAULT)


def profile_channel(*, endpoint_type: str) -> str | None:
    """The channel the destination profile for ``endpoint_type`` names, if any."""
    if not endpoint_type:
        return None
    return (
        DestinationProfile.objects.filter(endpoint_type=endpoint_type)
        .values_list("channel", flat=True)
        .first()
    )


def document_route(*, document: Document) -> tuple[SendChannel, ChannelRoute | None]:
    """The channel a document goes by now, and its route (see the module's rule)."""
    pending = (
        Transmission.objects.filter(document=document, state=TransmissionState.PENDING)
        .values_list("channel", "route_reason")
        .first()
    )
    if pending is not None:
        channel = channel_named(pending[0])
        return channel, channel.route(
            document=document, reason=pending[1] or RouteReason.RETRY
        )
    destination = document.destination
    named = profile_channel(
        endpoint_type=destination.endpoint_type if destination is not None else ""
    )
    if named in CHANNELS and CHANNELS[named] is not DEFAULT:
        channel = CHANNELS[named]
        return channel, channel.route(document=document, reason=RouteReason.PROFILE)
    for channel in CHANNELS.values():
        route = channel.route_instead(document=document)
        if route is not None:
            return channel, route
    return DEFAULT, DEFAULT.route(document=document, reason=RouteReason.PROFILE)


def route_when_refused(
    *, document: Document, refusal: str
) -> tuple[SendChannel, ChannelRoute] | None:
    """Another channel for a document whose destination its channel refused
    (DC02, DC03), where that channel's rule takes it; None: hold it."""
    for channel in CHANNELS.values():
        route = channel.route_when_refused(document=document, refusal=refusal)
        if route is not None:
            return channel, route
    return None


class BatchRouting:
    """For a batch: whether a document (with no pending transmission) might go by
    another channel than the default, its profile's channel and each channel's own
    rule read once per endpoint type and organisation. A yes sends it alone, where
    ``document_route`` decides."""

    def __init__(self) -> None:
        self.profiles: dict[str, str | None] = {}
        self.caches: dict[str, dict] = {name: {} for name in CHANNELS}

    def may_go_elsewhere(self, document: Document) -> bool:
        for name, channel in CHANNELS.items():
            if channel.may_route_instead(document=document, cache=self.caches[name]):
                return True
        endpoint_type = document.destination.endpoint_type
        if endpoint_type not in self.profiles:
            self.profiles[endpoint_type] = profile_channel(endpoint_type=endpoint_type)
        named = self.profiles[endpoint_type]
        return named in CHANNELS and CHANNELS[named] is not DEFAULT


def channel_pending(*, document_id: int) -> SendChannel:
    """The channel of the document's pending transmission (none: the default, which
    settles what was recorded already)."""
    name = (
        Transmission.objects.filter(
            document_id=document_id, state=TransmissionState.PENDING
        )
        .values_list("channel", flat=True)
        .first()
    )
    return channel_named(name) if name else DEFAULT


def channel_sent_last(*, document_id: int) -> SendChannel:
    """The channel of the document's latest send that reached anyone (none: the
    default)."""
    name = (
        Transmission.objects.filter(document_id=document_id)
        .exclude(external_id="")
        .order_by("-created_at", "-id")
        .values_list("channel", flat=True)
        .first()
    )
    return channel_named(name) if name else DEFAULT
