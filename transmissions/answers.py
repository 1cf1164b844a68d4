"""Reading what an outside system answered into a type: the one rule both
channels' readers (``transmissions.channels.connect.adapter`` for Connect,
``transmissions.channels.mesh.answers`` for MESH) share.

A body is taken only with a JSON media type and is validated by pydantic into the
model of its contract shape; one that does not fit raises ``AnswerUnreadable``,
whose message names the members and what was wrong with them, never their values
(pydantic's own message quotes them, so it is never chained).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

A = TypeVar("A", bound=BaseModel)


class AnswerUnreadable(ValueError):
    """An answer that breaks its contract; says what, never the values."""


def problems(error: ValidationError) -> str:
    """What was wrong, by member (``Changes.0.StatusCode: literal_error``), the
    first three and how many more."""
    items = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['type']}"
        for item in error.errors(include_url=False, include_input=False)
    ]
    more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
    return "; ".join(items[:3]) + more


def read_json(model: type[A], content: bytes, content_type: str) -> A:
    """A JSON answer as ``model``: JSON media types only (``application/json``
    and any ``+json``, such as MESH's ``application/vnd.mesh.v2+json``)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise AnswerUnreadable(f"content type {media_type or 'missing'}, not JSON")
    try:
        return model.model_validate_json(content)
    except ValidationError as exc:
        raise AnswerUnreadable(problems(exc)) from None
