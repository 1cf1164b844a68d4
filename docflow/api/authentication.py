"""API key authentication: ``Authorization: Api-Key <prefix>.<secret>``."""

from __future__ import annotations

import copy
import hashlib
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from docflow.api_keys import api_keys_stamp
from docflow.models import ApiKey, SendingOrganisation

KEYWORD = "Api-Key"
# Bounds the memory of the verified-key cache; only verified keys ever enter it.
VERIFIED_KEYS_MAX = 256


class VerifiedKeyCache:
    """API keys this process has verified in the last few seconds, by SHA-256.

    Looking a key up costs a three-table query on every request. A key verified
    less than ``DOCFLOW_API_KEY_CACHE_SECONDS`` ago is trusted again without it.
    Revoking a key, deactivating its service account or its organisation, or
    deleting any of them forgets every verified key at once in the process that
    made the change (the signals below) and bumps the shared stamp
    (``docflow.api_keys``) when it commits; every process reads the stamp at most
    every ``DOCFLOW_API_KEY_STAMP_SECONDS`` and forgets its keys when it moved, so
    the change takes effect on every node within that bound (and within the cache's
    lifetime even if the stamp were never bumped). Expiry is checked on every
    request. Failures are never cached, and the raw key is never kept: entries are
    keyed by its SHA-256.
    """

    def __init__(self, *, clock=time.monotonic, stamp=api_keys_stamp) -> None:
        self.clock = clock
        self.stamp = stamp
        self._entries: dict[bytes, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()
        self._stamp_seen: int | None = None
        self._stamp_read_at = float("-inf")

    def stamp_check(self, *, every: float) -> None:
        """Read the shared stamp if it was last read ``every`` seconds ago or more,
        and forget every verified key when it moved since."""
        now = self.clock()
        if now - self._stamp_read_at < every:
            return
        value = self.stamp()
        with self._lock:
            if value != self._stamp_seen:
                self._entries.clear()
                self._stamp_seen = value
            self._stamp_read_at = now

    @staticmethod
    def digest(raw_key: str) -> bytes:
        return hashlib.sha256(raw_key.encode()).digest()

    def get(self, digest: bytes) -> ApiKey | None:
        """A private copy of the cached key, its user and organisation, or None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        valid_until, api_key = entry
        if self.clock() >= valid_until:
            with self._lock:
                if self._entries.get(digest) is entry:
                    del self._entries[digest]
            return None
        return _detached_copy(api_key)

    def put(self, digest: bytes, api_key: ApiKey, *, seconds: float) -> None:
        """Remember a verified key (a copy: the caller's instance is its own)."""
        kept = _detached_copy(api_key)
        with self._lock:
            now = self.clock()
            if len(self._entries) >= VERIFIED_KEYS_MAX:
                for stale in [k for k, (t, _) in self._entries.items() if t <= now]:
                    del self._entries[stale]
                if len(self._entries) >= VERIFIED_KEYS_MAX:
                    self._entries.clear()
            self._entries[digest] = (now + seconds, kept)

    def clear(self) -> None:
        """Forget every verified key, and the stamp (read again next time)."""
        with self._lock:
            self._entries.clear()
            self._stamp_seen = None
            self._stamp_read_at = float("-inf")


def _detached_copy(api_key: ApiKey) -> ApiKey:
    """Copies of the key, its user and organisation that share no mutable state.

    Requests may cache things on these objects (permissions on the user, say);
    each request gets its own so nothing outlives it.
    """
    clone = copy.copy(api_key)
    clone.user = copy.copy(api_key.user)
    clone.sending_organisation = copy.copy(api_key.sending_organisation)
    return clone


verified_keys = VerifiedKeyCache()


def _forget_verified_keys(**kwargs) -> None:
    verified_keys.clear()


# A change to a key, a user or an organisation made in this process forgets every
# verified key at once; other processes follow when they see the stamp move (it is
# bumped by docflow.api_keys, in whichever process made the change).
for _model in (ApiKey, SendingOrganisation, get_user_model()):
    post_save.connect(
        _forget_verified_keys,
        sender=_model,
        dispatch_uid=f"forget-verified-api-keys-saved-{_model._meta.label}",
    )
    post_delete.connect(
        _forget_verified_keys,
        sender=_model,
        dispatch_uid=f"forget-verified-api-keys-deleted-{_model._meta.label}",
    )


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates a source system; ``request.auth`` is its ApiKey.

    The key is looked up by its public prefix and checked against its hash; revoked
    or expired keys, inactive service accounts and inactive organisations are refused.
    A key verified in the last ``DOCFLOW_API_KEY_CACHE_SECONDS`` is not looked up
    again unless the shared stamp moved (see VerifiedKeyCache for what that means
    for revocation).
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(
            "latin-1", errors="replace"
        )
        scheme, _, raw_key = header.partition(" ")
        if scheme != KEYWORD:
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed("Missing API key.")
        seconds = settings.DOCFLOW_API_KEY_CACHE_SECONDS
        digest = VerifiedKeyCache.digest(raw_key)
        if seconds > 0:
            verified_keys.stamp_check(every=settings.DOCFLOW_API_KEY_STAMP_SECONDS)
        api_key = verified_keys.get(digest) if seconds > 0 else None
        if api_key is None:
            api_key = self._verified_from_database(raw_key)
            if seconds > 0:
                verified_keys.put(digest, api_key, seconds=seconds)
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return api_key.user, api_key

    @staticmethod
    def _verified_from_database(raw_key: str) -> ApiKey:
        try:
            api_key = ApiKey.objects.select_related("user", "sending_organisation").get(
                prefix=raw_key.partition(".")[0], revoked=False
            )
        except ApiKey.DoesNotExist as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        if (
            api_key.has_expired
            or not api_key.is_valid(raw_key)
            or not api_key.user.is_active
            or not api_key.sending_organisation.is_active
        ):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return api_key

    def authenticate_header(self, request) -> str:
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "docflow.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>`",
        }
