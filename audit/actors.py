"""Who did something: a person, an API client or the system itself.

The audit app imports nothing of ours, so callers hand in a user, ``None`` (the
system) or any object with an ``audit_actor()`` method returning an :class:`Actor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """One identifiable actor as recorded in audit rows."""

    kind: str  # "user" | "api_client" | "system"
    identifier: str
    label: str

    @classmethod
    def system(cls, label: str = "docflow") -> Actor:
        return cls(kind="system", identifier="system", label=label)


def actor_for(obj: Any) -> Actor:
    """Normalise ``None``, a Django user, an Actor or an ``audit_actor()`` holder."""
    if obj is None:
        return Actor.system()
    if isinstance(obj, Actor):
        return obj
    audit_actor = getattr(obj, "audit_actor", None)
    if callable(audit_actor):
        return audit_actor()
    if getattr(obj, "is_authenticated", False) and getattr(obj, "pk", None) is not None:
        return Actor(kind="user", identifier=str(obj.pk), label=obj.get_username())
    return Actor.system()
