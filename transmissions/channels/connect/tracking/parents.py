"""Split parents: a parent document follows its parts once all have reached a state.

A split parent is never sent; its parts are. When every part is received (then
delivered, then accepted), the parent is moved there too, one audited transition
per step, after the page that moved the last part is written.
"""

from __future__ import annotations

from typing import Any

from docflow.models import Document, DocumentStatus
from docflow.services import document_transition

S = DocumentStatus


def split_parent_roll_up(parent_id: int, actor: Any) -> None:
    """A split parent follows its parts: received, delivered, accepted once all are."""
    # Called after the page's batch is written: it reads the parts as they are now.
    order = [S.RECEIVED, S.DELIVERED, S.ACCEPTED]
    states = list(
        Document.objects.filter(parent_id=parent_id).values_list("status", flat=True)
    )
    if not states or any(state not in order for state in states):
        return  # parts still travelling or needing attention: the parts carry it
    reached = order[min(order.index(state) for state in states)]
    parent = Document.objects.get(pk=parent_id)
    steps = []
    current = parent.status
    if current == S.READY:
        steps += ["claim_for_sending", "mark_received"]
        current = S.RECEIVED
    if current not in order or order.index(reached) <= order.index(current):
        steps = steps if current in order else []
    elif reached == S.DELIVERED:
        steps.append("mark_delivered")
    else:
        steps.append("mark_accepted")
    # Not ``engine.moves.document_move``: a parent's work items follow its parts.
    for step in steps:
        parent = document_transition(
            document=parent,
            transition=step,
            reason=f"all {len(states)} parts {reached}",
            data={"parts": len(states)},
            actor=actor,
        )
