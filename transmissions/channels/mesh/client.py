"""A MESH mailbox client: typed results, one error hierarchy, nothing else speaks MESH.

It wraps NHS England's ``mesh_client`` for what that does well (the NHSMESH token
for every request, mutual TLS, chunking) and decides, for every failure, whether
the request can have taken effect. The first chunk of an upload is never retried
(``mesh_client`` refuses to, and so do we): a timeout after it was sent means the
outcome is unknown, settled later by tracking the message's local id.

Refused credentials (401/403, whether mesh_client raises an ``HTTPError`` or, for
an upload, a bare ``MeshError``) are ``MeshAuthFailed`` before anything else is
considered. Every answer is validated into its type
(``transmissions.channels.mesh.answers``);
one that breaks the contract is ``MeshMalformedAnswer`` after an upload (outcome
unknown) and ``MeshMalformedRead`` after a read (retry later).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from mesh_client import MeshClient, MeshError
from urllib3.exceptions import NewConnectionError, ResponseError

from transmissions.channels.mesh import answers
from transmissions.channels.mesh.errors import (
    MeshAmbiguousLocalId,
    MeshAuthFailed,
    MeshChannelError,
    MeshConfigurationError,
    MeshMalformedAnswer,
    MeshMalformedRead,
    MeshNotFound,
    MeshOutcomeUnknown,
    MeshRefused,
    MeshUnavailable,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
APPLICATION_NAME = "docflow"
# What MESH answers when it does not accept our mailbox's credentials.
CREDENTIALS_REFUSED = frozenset({401, 403})
REPORT = "REPORT"


@dataclass(frozen=True)
class MeshConnection:
    """Everything needed to open one mailbox; secrets already read from their refs."""

    url: str
    mailbox_id: str
    password: str = field(repr=False)
    shared_key: str = field(repr=False)
    client_cert: tuple[str, str] | None = None
    ca_cert: str | None = None
    chunk_size: int = 20 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retries: int = 3


@dataclass(frozen=True)
class MeshEndpoint:
    """A mailbox that receives one workflow for one organisation."""

    mailbox_id: str
    mailbox_name: str = ""


@dataclass(frozen=True)
class MeshTracking:
    """What MESH says about one message we sent."""

    message_id: str
    local_id: str
    status: str
    status_code: str = ""
    status_description: str = ""
    status_success: bool | None = None
    recipient: str = ""
    workflow_id: str = ""


@dataclass(frozen=True)
class InboxMessage:
    """One message from our inbox: a report from MESH or data from a mailbox."""

    message_id: str
    message_type: str
    workflow_id: str
    sender: str
    local_id: str
    subject: str
    linked_message_id: str
    status_code: str
    status_event: str
    status_description: str
    status_success: bool | None
    content: bytes = field(repr=False, default=b"")

    @property
    def is_report(self) -> bool:
        return self.message_type.upper() == REPORT


def _caused_by_refused_connection(exc: BaseException) -> bool:
    """Whether the connection was never made (so nothing was sent)."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError):
            return True
        pending.extend(current.args)
        pending.extend(
            [current.__cause__, current.__context__, getattr(current, "reason", None)]
        )
    return False


def _error_code(response: requests.Response | None) -> tuple[str, str]:
    """MESH's error code and message from a v2 or v1 error body."""
    if response is None:
        return "", ""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return str(detail[0].get("code") or ""), str(detail[0].get("msg") or "")
        if "errorCode" in body:
            return str(body.get("errorCode") or ""), str(
                body.get("errorDescription") or ""
            )
    return "", ""


def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) if response is not None else None


def classify(
    exc: BaseException, *, upload: bool = False, status: int | None = None
) -> MeshChannelError:
    """The error a failure means. ``upload``: the first chunk of a send, where
    anything after the bytes left may have created the message. ``status``: the
    HTTP status of the answer that failed, where the exception does not carry it
    (``mesh_client`` raises a bare ``MeshError`` for a refused upload).

    Refused credentials come first, whatever shape the refusal takes: a 401/403
    means nothing was accepted and nothing will be until they are fixed."""
    if isinstance(exc, MeshChannelError):
        return exc
    status = _status_of(exc) or status
    if status in CREDENTIALS_REFUSED:
        return MeshAuthFailed(f"MESH refused our mailbox credentials ({status})")
    if isinstance(exc, MeshError):
        detail = exc.args[1] if len(exc.args) > 1 else exc.args[0]
        code = ""
        if isinstance(detail, dict):
            items = detail.get("detail")
            if isinstance(items, list) and items and isinstance(items[0], dict):
                code = str(items[0].get("code") or "")
            code = code or str(detail.get("errorCode") or "")
        return MeshRefused(f"MESH refused the request: {exc.args[0]}", code=code)
    if isinstance(exc, requests.exceptions.SSLError):
        return MeshConfigurationError(f"TLS with MESH failed: {exc}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return MeshUnavailable(f"MESH did not accept a connection: {exc}")
    if isinstance(exc, requests.exceptions.HTTPError):
        code, message = _error_code(exc.response)
        status = status or 0
        if status == 404:
            return MeshNotFound("MESH does not know it (404)", code=code)
        if status == 300:
            return MeshAmbiguousLocalId("More than one message has that local id")
        if status in (425, 429):
            return MeshUnavailable(f"MESH asked us to wait ({status})")
        if status >= 500:
            if upload:
                return MeshOutcomeUnknown(f"MESH failed during the upload ({status})")
            return MeshUnavailable(f"MESH failed ({status})")
        return MeshRefused(
            f"MESH refused the request ({status}): {message}", code=code or str(status)
        )
    if isinstance(
        exc,
        requests.exceptions.JSONDecodeError
        | answers.AnswerUnreadable
        | KeyError
        | TypeError
        | ValueError
        | AttributeError,
    ):
        # An answer mesh_client (or we) could not read: not JSON, a member missing
        # or of the wrong type, a header that does not parse.
        reason = (
            str(exc)
            if isinstance(exc, answers.AnswerUnreadable)
            else type(exc).__name__
        )
        if upload:
            return MeshMalformedAnswer(f"Unreadable answer to the upload: {reason}")
        return MeshMalformedRead(f"Unreadable answer from MESH: {reason}")
    if isinstance(exc, requests.exceptions.ConnectionError | ResponseError):
        if _caused_by_refused_connection(exc) or not upload:
            return MeshUnavailable(f"MESH could not be reached: {exc}")
        return MeshOutcomeUnknown(f"The connection failed during the upload: {exc}")
    if isinstance(exc, requests.exceptions.RetryError):
        if upload:
            return MeshOutcomeUnknown(f"MESH kept failing during the upload: {exc}")
        return MeshUnavailable(f"MESH kept failing: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        if upload:
            return MeshOutcomeUnknown("No answer from MESH after the upload was sent")
        return MeshUnavailable("No answer from MESH")
    if isinstance(exc, requests.exceptions.RequestException):
        if upload:
            return MeshOutcomeUnknown(f"The upload failed part way: {exc}")
        return MeshUnavailable(f"MESH request failed: {exc}")
    if isinstance(exc, OSError):
        # Before any connection: a certificate, key or CA file that cannot be read.
        return MeshConfigurationError(f"MESH TLS files unusable: {exc}")
    raise exc


class MeshMailboxClient:
    """One open session with one MESH mailbox. Use it as a context manager.

    Every call goes through ``_call``, which remembers the answer MESH gave (a
    response hook on mesh_client's session) so that a failure is classified by
    its HTTP status as well as its exception, and every JSON answer is then read
    through ``transmissions.channels.mesh.answers`` into its type."""

    def __init__(self, connection: MeshConnection) -> None:
        if not connection.url.startswith("https://"):
            raise MeshConfigurationError("MESH is only ever reached over HTTPS")
        if not (connection.password and connection.shared_key):
            raise MeshConfigurationError(
                f"Mailbox {connection.mailbox_id} has no password or shared key"
            )
        for path in (connection.ca_cert, *(connection.client_cert or ())):
            if path and not os.path.isfile(path):
                raise MeshConfigurationError(f"MESH TLS file missing: {path}")
        self.connection = connection
        try:
            self._client = self._open(connection)
        except OSError as exc:  # ssl.SSLError is one: unreadable or bad TLS files
            raise MeshConfigurationError(f"MESH TLS files unusable: {exc}") from exc
        self._answer: requests.Response | None = None
        self._client._session.hooks["response"].append(self._remember)

    @staticmethod
    def _open(connection: MeshConnection) -> MeshClient:
        return MeshClient(
            connection.url,
            connection.mailbox_id.upper(),
            connection.password,
            shared_key=connection.shared_key.encode(),
            cert=connection.client_cert,
            # None: the NHS CA bundle mesh_client ships for its known endpoints,
            # else the system's trusted CAs; verification is never turned off.
            verify=connection.ca_cert,
            max_chunk_size=connection.chunk_size,
            max_retries=connection.max_retries,
            timeout=(connection.connect_timeout, connection.read_timeout),
            application_name=APPLICATION_NAME,
        )

    def __enter__(self) -> MeshMailboxClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def mailbox_id(self) -> str:
        return self.connection.mailbox_id.upper()

    # every call

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any):
        self._answer = response
        return response

    def _call(self, call: Callable[[], T], *, upload: bool = False) -> T:
        """Run one mesh_client call; any failure becomes one of our errors."""
        self._answer = None
        try:
            return call()
        except Exception as exc:
            status = self._answer.status_code if self._answer is not None else None
            raise classify(exc, upload=upload, status=status) from exc

    def _read(self, model: type[answers.A], *, upload: bool = False) -> answers.A:
        """The answer just received, validated into ``model``."""
        answer = self._answer
        try:
            if answer is None:
                raise answers.AnswerUnreadable("no answer was recorded")
            return answers.read_json(
                model, answer.content, answer.headers.get("Content-Type", "")
            )
        except answers.AnswerUnreadable as exc:
            raise classify(exc, upload=upload) from exc

    # operations

    def handshake(self) -> None:
        """Validate the mailbox (MESH asks for this once a day)."""
        self._call(self._client.handshake)

    def lookup(self, *, ods_code: str, workflow_id: str) -> list[MeshEndpoint]:
        """The mailboxes that receive ``workflow_id`` for the organisation."""
        self._call(lambda: self._client.lookup_endpoint(ods_code, workflow_id))
        found = self._read(answers.LookupAnswer)
        return [
            MeshEndpoint(
                mailbox_id=item.mailbox_id, mailbox_name=item.mailbox_name or ""
            )
            for item in found.results
        ]

    def send(
        self,
        *,
        recipient: str,
        content: bytes,
        workflow_id: str,
        local_id: str,
        filename: str,
        subject: str = "",
        content_type: str = "application/octet-stream",
        checksum: str = "",
    ) -> str:
        """Upload one message (chunked past the chunk size); returns its message id."""
        kwargs: dict[str, Any] = {
            "workflow_id": workflow_id,
            "local_id": local_id,
            "filename": filename,
            "content_type": content_type,
        }
        if subject:
            kwargs["subject"] = subject
        if checksum:
            kwargs["checksum"] = checksum
        chunked = len(content) > self.connection.chunk_size
        message_id = self._call(
            lambda: self._client.send_message(
                recipient,
                content,
                max_chunk_size=self.connection.chunk_size,
                **kwargs,
            ),
            upload=True,
        )
        if not chunked:
            # The answer to the one chunk is the message's: read it as such.
            message_id = self._read(answers.SendAnswer, upload=True).message_id
        elif not isinstance(message_id, str) or not message_id:
            raise MeshMalformedAnswer("The upload's answer gave no message id")
        return message_id

    def track(self, message_id: str) -> MeshTracking:
        """What MESH says about one message we sent (not to be polled often)."""
        self._call(lambda: self._client.track_message(message_id))
        data = self._read(answers.TrackingAnswer)
        return MeshTracking(
            message_id=data.message_id,
            local_id=data.local_id or "",
            status=(data.status or "").lower(),
            status_code=data.status_code or "",
            status_description=data.status_description or "",
            status_success=data.status_success,
            recipient=data.recipient or "",
            workflow_id=data.workflow_id or "",
        )

    def track_by_local_id(self, local_id: str) -> MeshTracking | None:
        """The message we sent with ``local_id``, or None when MESH has none.

        ``mesh_client`` 5 no longer offers this call; MESH still answers it
        (deprecated, v1 shape). It is the only way to find a message whose id we
        never learnt because the answer to its upload was lost.
        """
        url = f"{self._client.mailbox_url}/outbox/tracking/{local_id}"
        session = self._client._session

        def get() -> requests.Response:
            response = session.get(
                url,
                headers={"Accept": "application/vnd.mesh.v1+json"},
                timeout=(self.connection.connect_timeout, self.connection.read_timeout),
            )
            response.raise_for_status()
            return response

        try:
            response = self._call(get)
        except MeshNotFound:
            return None
        if response.status_code == 300:
            raise MeshAmbiguousLocalId("More than one message has that local id")
        data = self._read(answers.TrackingByLocalIdAnswer)
        return MeshTracking(
            message_id=data.message_id,
            local_id=data.local_id or local_id,
            status=(data.status or "").lower(),
            status_code=data.status_code or "",
            status_description=data.status_description or "",
            status_success=None
            if data.status_success is None
            else data.status_success == "SUCCESS",
            recipient=data.recipient or "",
            workflow_id=data.workflow_id or "",
        )

    def inbox(self, *, limit: int = 500) -> list[str]:
        """Message ids waiting in our inbox, oldest first, at most ``limit``."""
        self._call(lambda: self._client.list_messages(max_results=max(limit, 10)))
        return self._read(answers.InboxAnswer).messages[:limit]

    def inbox_page(
        self, *, page_size: int = 500, next_link: str | None = None
    ) -> tuple[list[str], str | None]:
        """One page of the inbox (MESH gives at most 500 ids a request) and the
        link to the next page, None on the last."""

        def page() -> None:
            if next_link:
                self._client._inbox_v2_page(f"{self._client._url}{next_link}")
            else:
                self._client._inbox_v2_page(
                    params={"max_results": max(min(page_size, 500), 10)}
                )

        self._call(page)
        found = self._read(answers.InboxAnswer)
        following = found.links.next if found.links is not None else None
        if following and not following.startswith("/"):
            raise classify(answers.AnswerUnreadable("links.next: not a path"))
        return found.messages, following or None

    def retrieve(self, message_id: str) -> InboxMessage:
        """Download one message (every chunk) with its MESH headers."""

        def download() -> tuple[dict[str, str], bytes]:
            message = self._client.retrieve_message(message_id)
            try:
                headers = dict(message.mex_headers())
                return headers, message.read() or b""
            finally:
                message.close()

        raw_headers, content = self._call(download)
        try:
            headers = answers.read_headers(raw_headers)
        except answers.AnswerUnreadable as exc:
            raise classify(exc) from exc
        return InboxMessage(
            message_id=message_id,
            message_type=headers.message_type,
            workflow_id=headers.workflow_id,
            sender=headers.sender,
            local_id=headers.local_id,
            subject=headers.subject,
            linked_message_id=headers.linked_message_id,
            status_code=headers.status_code,
            status_event=headers.status_event,
            status_description=headers.status_description,
            status_success=headers.succeeded,
            content=content,
        )

    def acknowledge(self, message_id: str) -> None:
        """Remove one message from our inbox (only once it is recorded)."""
        self._call(lambda: self._client.acknowledge_message(message_id))
