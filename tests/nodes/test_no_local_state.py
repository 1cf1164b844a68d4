"""Web nodes keep no state of their own: sessions live in the database (or in
Redis), never in local files, signed cookies or one process's memory, so a user
whose node died carries on on another."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils.module_loading import import_string

SHARED_BY_THE_DATABASE = {"django.contrib.sessions.backends.db"}
ON_A_CACHE = {
    "django.contrib.sessions.backends.cache",
    # Reads the cache first: a local cache would keep a session another node ended.
    "django.contrib.sessions.backends.cached_db",
}
SHARED_CACHES = {
    "django.core.cache.backends.redis.RedisCache",
    "django_redis.cache.RedisCache",
}


def local_session_state(*, engine: str, caches: dict, cache_alias: str) -> str:
    """Why sessions under this configuration would be one node's own ("" if they
    are shared by every node)."""
    if engine in SHARED_BY_THE_DATABASE:
        return ""
    if engine in ON_A_CACHE:
        backend = caches[cache_alias]["BACKEND"]
        return (
            "" if backend in SHARED_CACHES else f"sessions on a local cache {backend}"
        )
    return f"sessions kept by {engine}"


def test_sessions_are_shared_by_every_node():
    assert (
        local_session_state(
            engine=settings.SESSION_ENGINE,
            caches=settings.CACHES,
            cache_alias=settings.SESSION_CACHE_ALIAS,
        )
        == ""
    )
    # The engine named is the one Django loads.
    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    assert issubclass(store, SessionBase)


@pytest.mark.parametrize(
    ("engine", "backend"),
    [
        ("django.contrib.sessions.backends.file", None),
        ("django.contrib.sessions.backends.signed_cookies", None),
        (
            "django.contrib.sessions.backends.cache",
            "django.core.cache.backends.locmem.LocMemCache",
        ),
        (
            "django.contrib.sessions.backends.cached_db",
            "django.core.cache.backends.locmem.LocMemCache",
        ),
        (
            "django.contrib.sessions.backends.cache",
            "django.core.cache.backends.filebased.FileBasedCache",
        ),
    ],
)
def test_a_session_engine_that_keeps_state_on_one_node_is_caught(engine, backend):
    caches = {"default": {"BACKEND": backend or "unused"}}
    assert local_session_state(engine=engine, caches=caches, cache_alias="default")


def test_sessions_on_redis_are_shared():
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
    assert not local_session_state(
        engine="django.contrib.sessions.backends.cache",
        caches=caches,
        cache_alias="default",
    )
