"""Connect's token request is one adapter setting (DOCFLOW_CONNECT_TOKEN_GRANT):
OAuth client credentials at /oauth2/token, or the OAuth password grant at /token as
the public imitation of Connect (docman-fake) serves it. Both against the real
simulator over HTTP."""

from __future__ import annotations

import pytest

from tests.transmissions.engine import connect_to
from tests.transmissions.test_connect_client import outbound, tokens_issued
from transmissions.channels.connect.client import ConnectClient, Timeouts, _TokenCache
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import ConnectAuthFailed


def client_for(simulator, *, grant: str, secret: str = "demo-secret-RX1"):
    return ConnectClient(
        base_url=simulator.url,
        client_id="client-RX1",
        client_secret=secret,
        timeouts=Timeouts(read=2.0),
        token_cache=_TokenCache(),
        token_grant=grant,
    )


@pytest.mark.parametrize("grant", ["client_credentials", "password"])
def test_either_grant_gets_a_token_and_sends(simulator, grant):
    with client_for(simulator, grant=grant) as client:
        status, created = client.post_document(
            idempotency_key=f"grant-{grant}", document=outbound()
        )

    assert created is True
    assert status.status_code == 4002
    assert tokens_issued(simulator) == 1


@pytest.mark.parametrize("grant", ["client_credentials", "password"])
def test_a_wrong_secret_is_refused_credentials_under_either_grant(simulator, grant):
    with (
        client_for(simulator, grant=grant, secret="wrong") as client,
        pytest.raises(ConnectAuthFailed),
    ):
        client.post_document(idempotency_key="refused", document=outbound())
    assert tokens_issued(simulator) == 0


def test_an_unknown_grant_is_refused_when_the_client_is_made(simulator):
    with pytest.raises(ValueError, match="Unknown Connect token grant"):
        client_for(simulator, grant="implicit")


def test_the_setting_chooses_the_grant(
    simulator, settings, monkeypatch, sending_organisation
):
    connect_to(simulator, settings, monkeypatch)
    settings.DOCFLOW_CONNECT_TOKEN_GRANT = "password"

    client = connect_client_for(sending_organisation)

    assert client._token_grant == "password"
    status, _created = client.post_document(
        idempotency_key="by-setting", document=outbound()
    )
    assert status.status_code == 4002
