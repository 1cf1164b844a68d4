"""API key authentication, and how long a verified key is trusted without a look-up."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from docflow.api.authentication import verified_keys
from docflow.models import ApiKey

pytestmark = pytest.mark.django_db

DOCUMENTS = "/api/v1/documents"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """A clock the cache reads, moved by hand; the cache starts empty."""
    fake = FakeClock()
    monkeypatch.setattr(verified_keys, "clock", fake)
    verified_keys.clear()
    yield fake
    verified_keys.clear()


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def key_queries(client: APIClient) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(DOCUMENTS).status_code == 200
    return sum("docflow_apikey" in query["sql"] for query in queries)


def test_a_key_verified_moments_ago_is_not_looked_up_again(api_client):
    assert key_queries(api_client) == 1
    assert key_queries(api_client) == 0


def test_a_key_is_looked_up_again_once_its_cache_lifetime_has_passed(
    api_client, clock, settings
):
    settings.DOCFLOW_API_KEY_CACHE_SECONDS = 5
    assert key_queries(api_client) == 1
    clock.now += 4.9
    assert key_queries(api_client) == 0
    clock.now += 0.1
    assert key_queries(api_client) == 1


def test_no_cache_lifetime_looks_every_key_up(api_client, settings):
    settings.DOCFLOW_API_KEY_CACHE_SECONDS = 0
    assert key_queries(api_client) == 1
    assert key_queries(api_client) == 1


def test_a_key_revoked_in_this_process_is_refused_at_once(api_client, api_key):
    key, _ = api_key
    assert api_client.get(DOCUMENTS).status_code == 200

    key.revoked = True
    key.save(update_fields=["revoked"])

    assert api_client.get(DOCUMENTS).status_code == 401


def test_a_key_revoked_elsewhere_is_refused_within_the_cache_lifetime(
    api_client, api_key, clock, settings
):
    settings.DOCFLOW_API_KEY_CACHE_SECONDS = 5
    key, _ = api_key
    assert api_client.get(DOCUMENTS).status_code == 200

    # Another process revokes it: no signal reaches this one.
    ApiKey.objects.filter(pk=key.pk).update(revoked=True)
    assert api_client.get(DOCUMENTS).status_code == 200
    clock.now += 5

    assert api_client.get(DOCUMENTS).status_code == 401


@pytest.mark.parametrize("what", ["user", "sending_organisation"])
def test_deactivating_the_service_account_or_organisation_refuses_the_key(
    api_client, api_key, what
):
    key, _ = api_key
    assert api_client.get(DOCUMENTS).status_code == 200

    owner = getattr(key, what)
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    assert api_client.get(DOCUMENTS).status_code == 401


def test_a_cached_key_is_refused_the_moment_it_expires(api_client, api_key):
    key, _ = api_key
    key.expiry_date = timezone.now() + datetime.timedelta(hours=1)
    key.save(update_fields=["expiry_date"])
    assert api_client.get(DOCUMENTS).status_code == 200
    assert key_queries(api_client) == 0  # cached

    with time_machine.travel(key.expiry_date + datetime.timedelta(seconds=1)):
        assert api_client.get(DOCUMENTS).status_code == 401


def test_a_cached_prefix_with_the_wrong_secret_is_refused(api_client, api_key):
    key, _ = api_key
    assert api_client.get(DOCUMENTS).status_code == 200

    forged = client_for(f"{key.prefix}.{'x' * 32}")

    assert forged.get(DOCUMENTS).status_code == 401


def test_each_request_gets_its_own_user_and_organisation_objects(api_client):
    from rest_framework.views import APIView

    seen = []
    original = APIView.initial

    def spy(view, request, *args, **kwargs):
        original(view, request, *args, **kwargs)
        seen.append((request.user, request.auth, request.auth.sending_organisation))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(APIView, "initial", spy)
        for _ in range(3):
            assert api_client.get(DOCUMENTS).status_code == 200

    for objects in zip(*seen, strict=True):
        assert len({id(obj) for obj in objects}) == 3
    assert all(user.pk == seen[0][0].pk for user, _, _ in seen)
