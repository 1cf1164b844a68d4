"""MESH's answers as types: every JSON body and the headers of every retrieved
message are validated here (pydantic, strict) before anything reads them.

``mesh_client`` sends the requests and returns what MESH said; the client
``transmissions.channels.mesh.client`` hands each raw answer to one of these
readers, and an answer that does not fit raises ``AnswerUnreadable``, which the
client turns into ``MeshMalformedRead`` (retry later) or ``MeshMalformedAnswer``
(after an upload: outcome unknown). Messages name members, never their values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

# Re-exported: MESH's readers are read through this module.
from transmissions.answers import A as A
from transmissions.answers import AnswerUnreadable, problems
from transmissions.answers import read_json as read_json


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class SendAnswer(_Answer):
    """POST outbox (the first chunk): the id MESH gave the message."""

    message_id: str = Field(
        min_length=1, validation_alias=AliasChoices("message_id", "messageID")
    )


class InboxLinks(_Answer):
    next: str | None = None


class InboxAnswer(_Answer):
    """GET inbox: the ids of the messages waiting, oldest first, and (v2) the
    link to the next page when there are more than one page holds."""

    messages: list[str]
    links: InboxLinks | None = None


class LookupItem(_Answer):
    mailbox_id: str = Field(
        min_length=1, validation_alias=AliasChoices("mailbox_id", "address")
    )
    mailbox_name: str | None = Field(
        None, validation_alias=AliasChoices("mailbox_name", "description")
    )


class LookupAnswer(_Answer):
    """GET endpointlookup (v2, or v1's ``address``/``description``)."""

    results: list[LookupItem]


class TrackingAnswer(_Answer):
    """GET outbox/tracking?messageID= (v2)."""

    message_id: str = Field(min_length=1)
    local_id: str | None = None
    status: str | None = None
    status_code: str | None = None
    status_description: str | None = None
    status_success: bool | None = None
    recipient: str | None = None
    workflow_id: str | None = None


class TrackingByLocalIdAnswer(_Answer):
    """GET outbox/tracking/{local id} (deprecated, v1 member names)."""

    message_id: str = Field(
        min_length=1, validation_alias=AliasChoices("messageId", "dtsId")
    )
    local_id: str | None = Field(None, validation_alias="localId")
    status: str | None = None
    status_code: str | None = Field(None, validation_alias="statusCode")
    status_description: str | None = Field(None, validation_alias="statusDescription")
    status_success: Literal["SUCCESS", "ERROR"] | None = Field(
        None, validation_alias="statusSuccess"
    )
    recipient: str | None = None
    workflow_id: str | None = Field(None, validation_alias="workflowId")


class MessageHeaders(_Answer):
    """The ``Mex-`` headers of a retrieved message (names lower-cased, prefix
    dropped, as ``mesh_client`` gives them). A report must say what it reports."""

    message_type: Literal["DATA", "REPORT"] = Field(validation_alias="messagetype")
    sender: str = Field("", validation_alias="from")
    workflow_id: str = Field("", validation_alias="workflowid")
    local_id: str = Field("", validation_alias="localid")
    subject: str = Field("", validation_alias="subject")
    linked_message_id: str = Field("", validation_alias="linkedmsgid")
    status_code: str = Field("", validation_alias="statuscode")
    status_event: str = Field("", validation_alias="statusevent")
    status_description: str = Field("", validation_alias="statusdescription")
    status_success: Literal["SUCCESS", "ERROR"] | None = Field(
        None, validation_alias="statussuccess"
    )

    @property
    def succeeded(self) -> bool | None:
        return None if self.status_success is None else self.status_success == "SUCCESS"


def read_headers(headers: dict[str, str]) -> MessageHeaders:
    """A retrieved message's headers; the message type compared upper-case."""
    values = {key.lower(): value for key, value in headers.items()}
    if isinstance(values.get("messagetype"), str):
        values["messagetype"] = values["messagetype"].strip().upper()
    if isinstance(values.get("statussuccess"), str):
        values["statussuccess"] = values["statussuccess"].strip().upper()
    try:
        parsed = MessageHeaders.model_validate(values)
    except ValidationError as exc:
        raise AnswerUnreadable(problems(exc)) from None
    if parsed.message_type == "REPORT" and not (
        parsed.status_code and (parsed.linked_message_id or parsed.local_id)
    ):
        raise AnswerUnreadable("a report without its status code or the message")
    return parsed
