"""What the engine asks of a channel: the shape every channel package fills in.

A channel (``channels/connect``, ``channels/mesh``, a third one later) is one
package whose ``channel`` module exposes one object with these members; the
registry (``transmissions.channels``) keys them by the destination profile's
channel. The engine and the pipeline never name a channel: they ask the registry
for the one a document goes by and call these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from docflow.models import Document
from transmissions.engine.send_rules import SendResult
from transmissions.models import OutboundHalt

# What to do instead of holding a document whose destination a channel refused
# (DC02, DC03 at Connect): another channel's send, or None to hold it.
RefusedFallback = Callable[[Document, str], SendResult | None]


class ChannelRoute(Protocol):
    """Why a document goes by a channel (``reason``: profile, retry, oversize, …)."""

    reason: str


class SendChannel(Protocol):
    """One channel: route, send, settle, resend and resolve, each a service of the
    channel's package."""

    name: str
    # False: a resend is a new message through ``document_send`` (MESH).
    resends: bool

    def route(self, *, document: Document, reason: str) -> ChannelRoute | None:
        """The route for a document this channel was chosen for (by the profile or
        a pending retry); None: the channel needs no route."""

    def route_instead(self, *, document: Document) -> ChannelRoute | None:
        """A route by this channel's own rule for a document another channel's
        profile names (MESH: a payload too large for Connect); None: no claim."""

    def route_when_refused(
        self, *, document: Document, refusal: str
    ) -> ChannelRoute | None:
        """A route for a document another channel refused for its destination."""

    def may_route_instead(self, *, document: Document, cache: dict) -> bool:
        """Whether ``route_instead`` might claim the document (cheap, for batches)."""

    def document_send(
        self,
        *,
        document: Document,
        route: ChannelRoute | None,
        halts: list[OutboundHalt],
        actor: Any,
        when_refused: RefusedFallback,
    ) -> SendResult:
        """Post one ready, sendable document at most once per claim."""

    def documents_send_together(
        self,
        *,
        documents: list[Document],
        halts: dict[int, list[OutboundHalt]],
        failing: dict[int, set[str]],
        when_refused: RefusedFallback,
        actor: Any,
    ) -> tuple[list[SendResult], list[int]]:
        """Send first attempts in batches (``halts``, ``failing``: per organisation,
        read once); the outcomes, and the documents to send alone instead."""

    def tracking_round(self) -> int:
        """Apply what the channel reports now (0: it tracks on its own schedule)."""

    def outcome_unknown_settle(self, *, document_id: int, actor: Any) -> str:
        """Settle an ``outcome_unknown`` document by its key (``Settled``)."""

    def claim_settle(self, *, document_id: int, actor: Any) -> str:
        """Settle a claim whose lease expired (``Settled``)."""

    def document_resend(self, *, document_id: int, actor: Any) -> SendResult:
        """Ask the channel to send again what it holds (``resends`` only)."""

    def rejection_resolve(self, *, document_id: int, note: str, actor: Any) -> str:
        """Tell the channel a rejection was resolved; the outcome's name."""


class RouteReason:
    """Why a document goes by the channel it goes by (a channel adds its own)."""

    PROFILE = "profile"
    RETRY = "retry"
