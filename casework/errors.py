"""Casework refusals: each says what rule stopped the action, in a sentence a person
can act on. Interfaces map them: permission -> 403, state -> 409, invalid -> 400."""

from __future__ import annotations


class WorkItemError(Exception):
    """A casework rule refused the action."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class WorkItemPermissionDenied(WorkItemError):
    """The actor lacks the role permission, or is not granted the item's team or
    the document's sending organisation."""

    code = "permission_denied"


class WorkItemStateError(WorkItemError):
    """The item is not in a state that allows this (resolving twice, reopening an
    open item, a second open item for one document)."""

    code = "item_state"


class DocumentStateError(WorkItemError):
    """The document's state does not allow this resolution (outcome still unknown,
    already delivered, in flight)."""

    code = "document_state"


class WorkItemInvalid(WorkItemError):
    """The request is incomplete or wrong: a missing reason, an unknown channel, a
    person who cannot work the item, a corrected file intake would refuse."""

    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        errors: dict[str, list[tuple[str, str]]] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.errors = errors or {}


class RerouteRefused(WorkItemError):
    """The new destination is not in the directory, not active, has no profile, is
    the current one, or cannot take the document's content as it is."""

    code = "reroute_refused"


class WorkItemStale(WorkItemStateError):
    """The item changed since the person's page showed it (its version moved on)."""

    code = "stale"


class WorkItemHeldByOther(WorkItemStateError):
    """Another person holds the item and the actor did not confirm they know."""

    code = "held_by_other"


class RerouteNotConfirmed(RerouteRefused):
    """No confirmation of the practice, or one for another practice."""

    code = "not_confirmed"
