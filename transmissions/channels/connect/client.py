"""HTTP to Docman Connect: timeouts, verified TLS, tokens cached per client.

Every answer is classified by status first, then validated into its type by the
adapter; an answer that breaks the contract is ``ConnectMalformedAnswer`` after a
request that may have taken effect (outcome unknown, settled by idempotency key)
and ``ConnectMalformedRead`` after a read (retry later). Nothing else escapes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from transmissions.channels.connect import adapter
from transmissions.channels.connect.adapter import (
    ChangesPage,
    ConnectOrganisation,
    DocumentStatus,
    OutboundDocument,
)
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectConflict,
    ConnectError,
    ConnectMalformedAnswer,
    ConnectMalformedRead,
    ConnectNotFound,
    ConnectOutcomeUnknown,
    ConnectRefused,
    ConnectUnavailable,
)
from transmissions.outside import base_url_checked, retry_after_seconds

T = TypeVar("T")

# Refresh tokens this long before Connect says they expire.
TOKEN_EARLY_REFRESH_SECONDS = 60


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect, read=self.read, write=self.write, pool=self.pool
        )


class _TokenCache:
    """Access tokens per (base URL, client id), shared by the clients of a process."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key: tuple[str, str], token: str, expires_in: int) -> None:
        lifetime = max(expires_in - TOKEN_EARLY_REFRESH_SECONDS, 1)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + lifetime)

    def forget(self, key: tuple[str, str], token: str | None = None) -> None:
        with self._lock:
            if token is None or self._tokens.get(key, ("",))[0] == token:
                self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = _TokenCache()


def check_base_url(base_url: str) -> str:
    """HTTPS everywhere; plain HTTP only to this machine (the simulator)."""
    return base_url_checked(
        base_url, service="Connect", error=ConnectConfigurationError
    )


class ConnectClient:
    """One sending organisation's view of Connect. Returns typed results only."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str | None,
        timeouts: Timeouts | None = None,
        http: httpx.Client | None = None,
        token_cache: _TokenCache = TOKENS,
        token_grant: str = "client_credentials",  # noqa: S107 (a grant's name)
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.client_id = client_id
        self._secret = client_secret
        # Checked here, so a mistyped setting fails at the first client, not later.
        adapter.token_request(grant=token_grant, client_id="", secret="")
        self._token_grant = token_grant
        self._tokens = token_cache
        self._http = http or httpx.Client(
            timeout=(timeouts or Timeouts()).as_httpx(), verify=True
        )
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # tokens

    @property
    def _token_key(self) -> tuple[str, str]:
        return (self.base_url, self.client_id)

    def _fetch_token(self) -> str:
        if not self.client_id or not self._secret:
            raise ConnectAuthFailed("No Connect credentials for this organisation.")
        path, form = adapter.token_request(
            grant=self._token_grant, client_id=self.client_id, secret=self._secret
        )
        try:
            response = self._http.post(self.base_url + path, data=form)
        except httpx.TransportError as exc:
            raise ConnectUnavailable(
                f"Token request failed: {type(exc).__name__}"
            ) from exc
        if response.status_code in (400, 401, 403):
            raise ConnectAuthFailed(
                f"Connect refused the credentials ({response.status_code})."
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise ConnectUnavailable(
                f"Token endpoint answered {response.status_code}",
                retry_after=retry_after_seconds(response),
            )
        if response.status_code != 200:
            # No token, and no sign that asking again will give one: stop.
            raise ConnectAuthFailed(f"Unexpected token answer {response.status_code}.")
        try:
            token = adapter.parse_token(
                response.content, response.headers.get("Content-Type", "")
            )
        except adapter.AnswerUnreadable as exc:
            # Nothing was changed by asking for a token: asking again is safe.
            raise ConnectMalformedRead(f"Unreadable token answer: {exc}") from exc
        self._tokens.put(self._token_key, token.access_token, token.expires_in)
        return token.access_token

    def _token(self) -> str:
        return self._tokens.get(self._token_key) or self._fetch_token()

    # requests

    def _request(
        self, method: str, path: str, *, may_have_effect: bool, **kwargs: Any
    ) -> httpx.Response:
        """Send once, refreshing the token once on 401; classify every failure."""
        for attempt in (1, 2):
            token = self._token()
            headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
            try:
                response = self._http.request(
                    method, self.base_url + path, headers=headers, **kwargs
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise ConnectUnavailable(
                    f"Connect unreachable: {type(exc).__name__}"
                ) from exc
            except (
                httpx.ReadTimeout,
                httpx.WriteTimeout,
                httpx.RemoteProtocolError,
            ) as exc:
                if may_have_effect:
                    raise ConnectOutcomeUnknown(
                        f"No answer after sending: {type(exc).__name__}"
                    ) from exc
                raise ConnectUnavailable(f"No answer: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                if may_have_effect:
                    raise ConnectOutcomeUnknown(type(exc).__name__) from exc
                raise ConnectUnavailable(type(exc).__name__) from exc
            if response.status_code == 401:
                self._tokens.forget(self._token_key, token)
                if attempt == 1:
                    kwargs["headers"] = {
                        k: v for k, v in headers.items() if k != "Authorization"
                    }
                    continue
                raise ConnectAuthFailed("Connect refused a fresh token.")
            return response
        raise ConnectAuthFailed("Connect refused a fresh token.")  # pragma: no cover

    @staticmethod
    def _malformed(message: str, *, may_have_effect: bool) -> ConnectError:
        """An answer that breaks the contract: after a request that may have taken
        effect it is ambiguous (settle by key), after a read it is retryable."""
        if may_have_effect:
            return ConnectMalformedAnswer(message)
        return ConnectMalformedRead(message)

    def _raise_for(
        self,
        response: httpx.Response,
        *,
        may_have_effect: bool,
        expected: tuple[int, ...] = (200,),
    ) -> None:
        status = response.status_code
        if status in expected:
            return
        if status == 429 or status >= 500:
            raise ConnectUnavailable(
                f"Connect answered {status}", retry_after=retry_after_seconds(response)
            )
        if status == 403:
            # Authenticated but not allowed: our credentials, not this request.
            raise ConnectAuthFailed("Connect refused our credentials (403).")
        if status == 404:
            raise ConnectNotFound("Not found at Connect.")
        if status == 409:
            raise ConnectConflict("Connect reported a conflict.")
        if status == 400:
            codes = adapter.parse_validation_codes(response.content)
            raise ConnectRefused(
                "Connect refused the document: " + (", ".join(codes) or "400"),
                codes=codes,
            )
        # Any other code (a 2xx the contract does not name, a redirect, a 418)
        # says nothing we can rely on.
        raise self._malformed(
            f"Connect answered {status}, which the contract does not define here.",
            may_have_effect=may_have_effect,
        )

    def _read(
        self,
        response: httpx.Response,
        parse: Callable[[bytes, str], T],
        *,
        may_have_effect: bool,
        expected: tuple[int, ...] = (200,),
    ) -> T:
        """Classify the status, then validate the body into its type."""
        self._raise_for(response, may_have_effect=may_have_effect, expected=expected)
        try:
            return parse(response.content, response.headers.get("Content-Type", ""))
        except adapter.AnswerUnreadable as exc:
            raise self._malformed(
                f"Unreadable answer from Connect ({response.status_code}): {exc}",
                may_have_effect=may_have_effect,
            ) from exc

    # operations

    def post_document(
        self, *, idempotency_key: str, document: OutboundDocument
    ) -> tuple[DocumentStatus, bool]:
        """POST once; returns (status, created). A replay of our key is not created."""
        response = self._request(
            "POST",
            adapter.DOCUMENTS_PATH,
            may_have_effect=True,
            json=adapter.inbound_document_body(document),
            headers={"Idempotency-Key": idempotency_key},
        )
        status = self._read(
            response, adapter.parse_status, may_have_effect=True, expected=(200, 201)
        )
        return status, response.status_code == 201

    def find_by_idempotency_key(self, idempotency_key: str) -> DocumentStatus | None:
        """Settle an ambiguous POST: the document Connect holds for our key, if any."""
        response = self._request(
            "GET",
            adapter.DOCUMENTS_PATH,
            may_have_effect=False,
            params={"idempotencyKey": idempotency_key},
        )
        return self._read(response, adapter.parse_found, may_have_effect=False)

    def get_status(self, guid: str) -> DocumentStatus:
        response = self._request(
            "GET", adapter.document_path(guid), may_have_effect=False
        )
        return self._read(response, adapter.parse_status, may_have_effect=False)

    def changes(self, *, cursor: str = "", limit: int = 500) -> ChangesPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = self._request(
            "GET", adapter.CHANGES_PATH, may_have_effect=False, params=params
        )
        return self._read(response, adapter.parse_changes, may_have_effect=False)

    def organisation(self, ods_code: str) -> ConnectOrganisation | None:
        """The directory entry for a destination; None when Connect does not know it."""
        response = self._request(
            "GET", adapter.organisation_path(ods_code), may_have_effect=False
        )
        if response.status_code == 404:
            return None
        return self._read(response, adapter.parse_organisation, may_have_effect=False)

    def resend(
        self, guid: str, *, idempotency_key: str, recipient_ods_code: str | None = None
    ) -> DocumentStatus:
        body = {"RecipientOdsCode": recipient_ods_code} if recipient_ods_code else {}
        response = self._request(
            "POST",
            adapter.resend_path(guid),
            may_have_effect=True,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return self._read(
            response, adapter.parse_status, may_have_effect=True, expected=(200, 201)
        )

    def resolve(self, guid: str, *, note: str) -> DocumentStatus:
        response = self._request(
            "POST",
            adapter.resolve_path(guid),
            may_have_effect=True,
            json={"ResolutionNote": note[:255]},
        )
        return self._read(response, adapter.parse_status, may_have_effect=True)
