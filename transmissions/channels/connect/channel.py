"""Connect as the engine sees it: the one object the registry holds for Connect."""

from __future__ import annotations

from typing import Any

from docflow.models import Channel, Document
from transmissions.channels.connect.batches import connect_documents_send_together
from transmissions.channels.connect.resending import (
    connect_document_resend,
    rejection_resolve_at_connect,
)
from transmissions.channels.connect.sending import connect_document_send
from transmissions.channels.connect.settling import (
    connect_claim_settle,
    connect_outcome_unknown_settle,
)
from transmissions.channels.connect.tracking.polling import connect_tracking_round
from transmissions.engine.channel import RefusedFallback
from transmissions.engine.send_rules import SendResult
from transmissions.models import OutboundHalt


class ConnectChannel:
    """Docman Connect: the default channel; it resends and resolves what it holds,
    and claims no document another channel's profile names."""

    name = Channel.CONNECT
    resends = True

    def route(self, *, document: Document, reason: str) -> None:
        return None  # Connect needs no route: the destination's ODS code is enough

    def route_instead(self, *, document: Document) -> None:
        return None

    def route_when_refused(self, *, document: Document, refusal: str) -> None:
        return None

    def may_route_instead(self, *, document: Document, cache: dict) -> bool:
        return False

    def document_send(
        self,
        *,
        document: Document,
        route: None,
        halts: list[OutboundHalt],
        actor: Any,
        when_refused: RefusedFallback,
    ) -> SendResult:
        return connect_document_send(
            document=document, halts=halts, actor=actor, when_refused=when_refused
        )

    def documents_send_together(
        self,
        *,
        documents: list[Document],
        halts: dict[int, list[OutboundHalt]],
        failing: dict[int, set[str]],
        when_refused: RefusedFallback,
        actor: Any,
    ) -> tuple[list[SendResult], list[int]]:
        return connect_documents_send_together(
            documents=documents,
            halts=halts,
            failing=failing,
            when_refused=when_refused,
            actor=actor,
        )

    def tracking_round(self) -> int:
        return connect_tracking_round()

    def outcome_unknown_settle(self, *, document_id: int, actor: Any) -> str:
        return connect_outcome_unknown_settle(document_id=document_id, actor=actor)

    def claim_settle(self, *, document_id: int, actor: Any) -> str:
        return connect_claim_settle(document_id=document_id, actor=actor)

    def document_resend(self, *, document_id: int, actor: Any) -> SendResult:
        return connect_document_resend(document_id=document_id, actor=actor)

    def rejection_resolve(self, *, document_id: int, note: str, actor: Any) -> str:
        return rejection_resolve_at_connect(
            document_id=document_id, note=note, actor=actor
        )


CONNECT = ConnectChannel()
