"""MESH as the engine sees it: the one object the registry holds for MESH."""

from __future__ import annotations

from typing import Any

from docflow.models import Channel, Document
from transmissions.channels.mesh.routing import (
    MeshRoute,
    mesh_may_route_instead,
    mesh_route,
    mesh_route_instead,
    mesh_route_when_refused,
)
from transmissions.channels.mesh.sending import mesh_document_send
from transmissions.channels.mesh.settling import (
    mesh_claim_settle,
    mesh_outcome_unknown_settle,
)
from transmissions.engine.channel import RefusedFallback
from transmissions.engine.send_rules import SendResult
from transmissions.models import OutboundHalt

# MESH has no resolve call: there is nothing to tell it about a resolution.
NOTHING_TO_RESOLVE = "not_at_connect"


class MeshChannel:
    """NHS MESH: a message per send; a resend is a new message (``resends`` is
    False), and a rejection resolved here is not MESH's business."""

    name = Channel.MESH
    resends = False

    def route(self, *, document: Document, reason: str) -> MeshRoute:
        return mesh_route(document=document, reason=reason)

    def route_instead(self, *, document: Document) -> MeshRoute | None:
        return mesh_route_instead(document=document)

    def route_when_refused(
        self, *, document: Document, refusal: str
    ) -> MeshRoute | None:
        return mesh_route_when_refused(document=document, refusal=refusal)

    def may_route_instead(self, *, document: Document, cache: dict) -> bool:
        return mesh_may_route_instead(document=document, cache=cache)

    def document_send(
        self,
        *,
        document: Document,
        route: MeshRoute,
        halts: list[OutboundHalt],
        actor: Any,
        when_refused: RefusedFallback,
    ) -> SendResult:
        return mesh_document_send(document=document, route=route, actor=actor)

    def documents_send_together(
        self,
        *,
        documents: list[Document],
        halts: dict[int, list[OutboundHalt]],
        failing: dict[int, set[str]],
        when_refused: RefusedFallback,
        actor: Any,
    ) -> tuple[list[SendResult], list[int]]:
        return [], [document.pk for document in documents]  # no batches: alone

    def tracking_round(self) -> int:
        return 0  # tracked through the inboxes, on their own schedule

    def outcome_unknown_settle(self, *, document_id: int, actor: Any) -> str:
        return mesh_outcome_unknown_settle(document_id=document_id, actor=actor)

    def claim_settle(self, *, document_id: int, actor: Any) -> str:
        return mesh_claim_settle(document_id=document_id, actor=actor)

    def document_resend(self, *, document_id: int, actor: Any) -> SendResult:
        raise NotImplementedError("MESH resends as a new message: document_send")

    def rejection_resolve(self, *, document_id: int, note: str, actor: Any) -> str:
        return NOTHING_TO_RESOLVE


MESH = MeshChannel()
