"""API-key revocation reaches every process through the shared stamp: a process
forgets the keys it verified when it sees the stamp move, read at most every
DOCFLOW_API_KEY_STAMP_SECONDS, however long it would otherwise trust them. (The
same across real server processes: tests/nodes/test_api_key_revocation.py.)"""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from docflow.api.authentication import verified_keys
from docflow.api_keys import api_key_revoke, api_keys_stamp, api_keys_stamp_bump
from docflow.models import ApiKey

pytestmark = pytest.mark.django_db
DOCUMENTS = "/api/v1/documents"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch, settings):
    fake = FakeClock()
    monkeypatch.setattr(verified_keys, "clock", fake)
    settings.DOCFLOW_API_KEY_CACHE_SECONDS = 300
    settings.DOCFLOW_API_KEY_STAMP_SECONDS = 1
    verified_keys.clear()
    yield fake
    verified_keys.clear()


def test_a_key_revoked_by_another_process_is_refused_once_the_stamp_is_read(
    api_client, api_key, clock
):
    key, _ = api_key
    assert api_client.get(DOCUMENTS).status_code == 200

    # Another process revokes it and bumps the stamp: no signal reaches this one.
    ApiKey.objects.filter(pk=key.pk).update(revoked=True)
    api_keys_stamp_bump()
    clock.now += 0.5
    assert api_client.get(DOCUMENTS).status_code == 200  # stamp not read again yet
    clock.now += 0.5

    assert api_client.get(DOCUMENTS).status_code == 401


def test_without_a_stamp_move_a_verified_key_is_trusted_for_the_cache_lifetime(
    api_client, api_key, clock
):
    key, _ = api_key
    assert api_client.get(DOCUMENTS).status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(revoked=True)  # and no stamp bump
    clock.now += 10
    assert api_client.get(DOCUMENTS).status_code == 200
    clock.now += 300
    assert api_client.get(DOCUMENTS).status_code == 401


def test_revoking_a_key_through_the_service_bumps_the_stamp_and_is_audited(
    api_key, django_capture_on_commit_callbacks
):
    key, _ = api_key
    before = api_keys_stamp()
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(prefix=key.prefix)
    key.refresh_from_db()
    assert key.revoked
    assert api_keys_stamp() > before
    event = AuditEvent.objects.filter(
        action="configuration.changed", target_id=key.prefix
    ).get()
    assert event.data["changes"] == {"revoked": {"before": False, "after": True}}
    # Revoking it again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(prefix=key.prefix)
    assert AuditEvent.objects.filter(action="configuration.changed").count() == 1
