"""A MESH mailbox client: typed results, one error hierarchy, nothing else speaks MESH.

It wraps NHS England's ``mesh_client`` for what that does well (the NHSMESH token
for every request, mutual TLS, chunking) and decides, for every failure, whether
the request can have taken effect. The first chunk of an upload is never retried
(``mesh_client`` refuses to, and so do we): a timeout after it was sent means the
outcome is unknown, settled later by tracking the message's local id.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import requests
from mesh_client import MeshClient, MeshError
from urllib3.exceptions import NewConnectionError, ResponseError

from transmissions.mesh.errors import (
    MeshAmbiguousLocalId,
    MeshAuthFailed,
    MeshChannelError,
    MeshConfigurationError,
    MeshNotFound,
    MeshOutcomeUnknown,
    MeshRefused,
    MeshUnavailable,
)

logger = logging.getLogger(__name__)

APPLICATION_NAME = "docflow"
REPORT = "REPORT"
DATA = "DATA"


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


def classify(exc: BaseException, *, upload: bool = False) -> MeshChannelError:
    """The error a failure means. ``upload``: the first chunk of a send, where
    anything after the bytes left may have created the message."""
    if isinstance(exc, MeshChannelError):
        return exc
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
        status = exc.response.status_code if exc.response is not None else 0
        code, message = _error_code(exc.response)
        if status == 403:
            return MeshAuthFailed("MESH refused our mailbox credentials (403)")
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


def _header_bool(value: str | None) -> bool | None:
    if not value:
        return None
    return value.strip().upper() == "SUCCESS"


class MeshMailboxClient:
    """One open session with one MESH mailbox. Use it as a context manager."""

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

    def handshake(self) -> None:
        """Validate the mailbox (MESH asks for this once a day)."""
        try:
            self._client.handshake()
        except Exception as exc:
            raise classify(exc) from exc

    def lookup(self, *, ods_code: str, workflow_id: str) -> list[MeshEndpoint]:
        """The mailboxes that receive ``workflow_id`` for the organisation."""
        try:
            answer = self._client.lookup_endpoint(ods_code, workflow_id)
        except Exception as exc:
            raise classify(exc) from exc
        return [
            MeshEndpoint(
                mailbox_id=str(item.get("mailbox_id") or item.get("address") or ""),
                mailbox_name=str(
                    item.get("mailbox_name") or item.get("description") or ""
                ),
            )
            for item in answer.get("results", [])
            if item.get("mailbox_id") or item.get("address")
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
        try:
            return self._client.send_message(
                recipient,
                content,
                max_chunk_size=self.connection.chunk_size,
                **kwargs,
            )
        except Exception as exc:
            raise classify(exc, upload=True) from exc

    def track(self, message_id: str) -> MeshTracking:
        """What MESH says about one message we sent (not to be polled often)."""
        try:
            data = self._client.track_message(message_id)
        except Exception as exc:
            raise classify(exc) from exc
        return MeshTracking(
            message_id=str(data.get("message_id") or message_id),
            local_id=str(data.get("local_id") or ""),
            status=str(data.get("status") or "").lower(),
            status_code=str(data.get("status_code") or ""),
            status_description=str(data.get("status_description") or ""),
            status_success=data.get("status_success"),
            recipient=str(data.get("recipient") or ""),
            workflow_id=str(data.get("workflow_id") or ""),
        )

    def track_by_local_id(self, local_id: str) -> MeshTracking | None:
        """The message we sent with ``local_id``, or None when MESH has none.

        ``mesh_client`` 5 no longer offers this call; MESH still answers it
        (deprecated, v1 shape). It is the only way to find a message whose id we
        never learnt because the answer to its upload was lost.
        """
        url = f"{self._client.mailbox_url}/outbox/tracking/{local_id}"
        session = self._client._session
        try:
            response = session.get(
                url,
                headers={"Accept": "application/vnd.mesh.v1+json"},
                timeout=(self.connection.connect_timeout, self.connection.read_timeout),
            )
            response.raise_for_status()
        except Exception as exc:
            error = classify(exc)
            if isinstance(error, MeshNotFound):
                return None
            raise error from exc
        if response.status_code == 300:
            raise MeshAmbiguousLocalId("More than one message has that local id")
        data = response.json()
        return MeshTracking(
            message_id=str(data.get("messageId") or data.get("dtsId") or ""),
            local_id=str(data.get("localId") or local_id),
            status=str(data.get("status") or "").lower(),
            status_code=str(data.get("statusCode") or ""),
            status_description=str(data.get("statusDescription") or ""),
            status_success=_header_bool(data.get("statusSuccess")),
            recipient=str(data.get("recipient") or ""),
            workflow_id=str(data.get("workflowId") or ""),
        )

    def inbox(self, *, limit: int = 500) -> list[str]:
        """Message ids waiting in our inbox, oldest first, at most ``limit``."""
        try:
            return self._client.list_messages(max_results=max(limit, 10))[:limit]
        except Exception as exc:
            raise classify(exc) from exc

    def retrieve(self, message_id: str) -> InboxMessage:
        """Download one message (every chunk) with its MESH headers."""
        try:
            message = self._client.retrieve_message(message_id)
            try:
                content = message.read()
            finally:
                message.close()
        except Exception as exc:
            raise classify(exc) from exc
        headers = dict(message.mex_headers())
        return InboxMessage(
            message_id=message_id,
            message_type=str(headers.get("messagetype") or DATA).upper(),
            workflow_id=str(headers.get("workflowid") or ""),
            sender=str(headers.get("from") or ""),
            local_id=str(headers.get("localid") or ""),
            subject=str(headers.get("subject") or ""),
            linked_message_id=str(headers.get("linkedmsgid") or ""),
            status_code=str(headers.get("statuscode") or ""),
            status_event=str(headers.get("statusevent") or ""),
            status_description=str(headers.get("statusdescription") or ""),
            status_success=_header_bool(headers.get("statussuccess")),
            content=content or b"",
        )

    def acknowledge(self, message_id: str) -> None:
        """Remove one message from our inbox (only once it is recorded)."""
        try:
            self._client.acknowledge_message(message_id)
        except Exception as exc:
            raise classify(exc) from exc
