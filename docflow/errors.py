"""The document domain's refusals: what its services raise."""

from __future__ import annotations


class DocumentError(Exception):
    """A domain rule refused the request."""


class IntakeRefused(DocumentError):
    """The submission is invalid; ``errors`` maps each field to its problems."""

    def __init__(self, errors: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__("The document was refused.")
        self.errors = errors


class IdempotencyConflict(DocumentError):
    """The idempotency key was used before for a different document."""


class TransitionRefused(DocumentError):
    """The document is not in a state that allows this change."""


class TransitionConflict(DocumentError):
    """A document changed after it was read for a batch of transitions: the
    caller's transaction must roll back (it never half-applies)."""


class ContentForbidden(DocumentError):
    """The user's role does not carry the permission to see patient content."""


class ContentPurged(DocumentError):
    """Every payload version of the document was purged under retention."""


class IntakeBusy(DocumentError):
    """The preparation backlog is past its depth: nothing is stored, and the sender
    should send again (the same idempotency key) after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("docflow is busy: send again later.")
        self.retry_after = retry_after
