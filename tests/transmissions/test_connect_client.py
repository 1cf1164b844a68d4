"""The Connect client against the real simulator over HTTP: typed results and errors."""

from __future__ import annotations

import datetime
import sqlite3

import httpx
import pytest

from transmissions.channels.connect.adapter import OutboundDocument
from transmissions.channels.connect.client import ConnectClient, Timeouts, _TokenCache
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectConflict,
    ConnectMalformedAnswer,
    ConnectMalformedRead,
    ConnectOutcomeUnknown,
    ConnectRefused,
    ConnectUnavailable,
)


def outbound(recipient: str = "A81001", **overrides) -> OutboundDocument:
    values = {
        "sender_ods_code": "RX1",
        "sender_organisation": "Example Hospitals NHS Trust",
        "sender_department": "Cardiology",
        "sender_person": "Dr Example",
        "recipient_ods_code": recipient,
        "nhs_number": "9990000018",
        "family_name": "Testpatient",
        "given_names": "Alex",
        "birth_date": datetime.date(1950, 3, 1),
        "gender": "Female",
        "file_extension": "pdf",
        "content": b"%PDF-1.4 letter",
        "description": "Discharge summary",
        "event_date": datetime.date(2024, 1, 15),
    }
    values.update(overrides)
    return OutboundDocument(**values)


@pytest.fixture
def client(simulator):
    connect = ConnectClient(
        base_url=simulator.url,
        client_id="client-RX1",
        client_secret="demo-secret-RX1",
        timeouts=Timeouts(read=1.0),
        token_cache=_TokenCache(),
    )
    yield connect
    connect.close()


def tokens_issued(simulator) -> int:
    with sqlite3.connect(simulator.state_path) as db:
        return db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]


def test_post_returns_typed_status_and_replay_is_not_created(client):
    status, created = client.post_document(idempotency_key="k1", document=outbound())
    again, created_again = client.post_document(
        idempotency_key="k1", document=outbound()
    )
    assert created is True
    assert created_again is False
    assert status.status_code == 4002
    assert again.guid == status.guid
    assert client.get_status(status.guid).recipient_ods_code == "A81001"


def test_same_key_with_another_document_is_a_conflict(client):
    client.post_document(idempotency_key="k", document=outbound())
    with pytest.raises(ConnectConflict) as caught:
        client.post_document(idempotency_key="k", document=outbound(notes="changed"))
    assert caught.value.retry_safe is False


@pytest.mark.parametrize(
    ("recipient", "overrides", "codes"),
    [
        ("A81006", {}, ["DC02"]),
        ("A81007", {}, ["DC03"]),
        ("A81001", {"notes": "n" * 256}, ["DC01.03"]),
        ("A81013", {"content": b"%PDF" + b"0" * 200_001}, ["SIM01"]),
    ],
)
def test_refusals_are_permanent_and_carry_the_codes(
    client, recipient, overrides, codes
):
    with pytest.raises(ConnectRefused) as caught:
        client.post_document(
            idempotency_key="r", document=outbound(recipient, **overrides)
        )
    assert caught.value.codes == codes
    assert caught.value.retry_safe is False
    assert caught.value.error_class == "permanent"


def test_flaky_answers_are_classified_by_what_is_safe(client, simulator):
    httpx.put(
        f"{simulator.url}/_sim/organisations/A81010", json={"behaviour": "flaky:1"}
    )
    simulator.app.scenario.flaky_hang_seconds = 2.0  # longer than the 1 s read timeout
    seen: dict[type, list[str]] = {}
    for n in range(24):
        key = f"flaky-{n}"
        try:
            client.post_document(idempotency_key=key, document=outbound("A81010"))
        except (ConnectUnavailable, ConnectOutcomeUnknown) as exc:
            seen.setdefault(type(exc), []).append(key)
            if isinstance(exc, ConnectUnavailable) and exc.retry_after is not None:
                assert exc.retry_after == 1.0
    assert set(seen) == {ConnectUnavailable, ConnectOutcomeUnknown}
    # Retryable failures never reached Connect; ambiguous ones did, and are found.
    for key in seen[ConnectUnavailable]:
        assert client.find_by_idempotency_key(key) is None
    for key in seen[ConnectOutcomeUnknown]:
        found = client.find_by_idempotency_key(key)
        assert found is not None
        assert found.idempotency_key == key


def test_token_is_cached_and_refreshed_once_after_a_401(client, simulator):
    client.organisation("A81001")
    client.organisation("A81002")
    assert tokens_issued(simulator) == 1
    simulator.app.store.tokens_revoke()
    assert client.organisation("A81001").is_active is True
    assert tokens_issued(simulator) == 1  # the old one went, one fresh one came


def test_rotated_secret_is_an_auth_failure(client, simulator):
    client.organisation("A81001")
    httpx.put(
        f"{simulator.url}/_sim/clients/client-RX1", json={"client_secret": "rotated"}
    )
    with pytest.raises(ConnectAuthFailed):
        client.organisation("A81001")


def test_missing_secret_is_an_auth_failure_without_a_request(simulator):
    connect = ConnectClient(
        base_url=simulator.url,
        client_id="client-RX1",
        client_secret=None,
        token_cache=_TokenCache(),
    )
    with pytest.raises(ConnectAuthFailed):
        connect.organisation("A81001")
    assert tokens_issued(simulator) == 0


@pytest.mark.parametrize(
    "url", ["http://connect.example.nhs.uk", "ftp://127.0.0.1", "connect.example"]
)
def test_plain_http_is_refused_except_to_loopback(url):
    with pytest.raises(ConnectConfigurationError):
        ConnectClient(base_url=url, client_id="c", client_secret="s")


@pytest.mark.parametrize("url", ["https://connect.example.nhs.uk", "http://[::1]:8100"])
def test_https_and_loopback_http_are_allowed(url):
    assert ConnectClient(base_url=url, client_id="c", client_secret="s").base_url == url


def test_unreachable_connect_is_retryable(unused_tcp_port):
    connect = ConnectClient(
        base_url=f"http://127.0.0.1:{unused_tcp_port}",
        client_id="c",
        client_secret="s",
        token_cache=_TokenCache(),
    )
    with pytest.raises(ConnectUnavailable) as caught:
        connect.post_document(idempotency_key="x", document=outbound())
    assert caught.value.retry_safe is True


def test_unknown_organisation_is_none(client):
    assert client.organisation("Z99999") is None
    organisation = client.organisation("A81003")
    assert organisation.endpoint_type == "emis_mesh"  # our profile code


def test_change_feed_and_resend_and_resolve(client, simulator):
    status, _ = client.post_document(idempotency_key="rj", document=outbound("A81005"))
    simulator.app.store.advance(
        now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    )
    page = client.changes(limit=10)
    assert [c.status_code for c in page.changes] == [4002, 4003, 4005]
    assert page.changes[-1].rejection.code == "REJ01"
    assert client.changes(cursor=page.next_cursor).changes == []
    resent = client.resend(
        status.guid, idempotency_key="rj-2", recipient_ods_code="A81001"
    )
    assert resent.resend_of == status.guid
    assert client.resolve(status.guid, note="Rerouted").status_code == 6000


def _connect_answering(answer) -> ConnectClient:
    """A client whose Connect answers every API call with ``answer(request)``
    (for answers the simulator never gives); tokens are issued as usual."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return answer(request)

    return ConnectClient(
        base_url="http://127.0.0.1:9",
        client_id="client-RX1",
        client_secret="demo-secret-RX1",
        http=httpx.Client(transport=httpx.MockTransport(handle)),
        token_cache=_TokenCache(),
    )


def test_forbidden_is_refused_credentials_not_an_unknown_outcome():
    client = _connect_answering(lambda request: httpx.Response(403))

    with pytest.raises(ConnectAuthFailed):
        client.post_document(idempotency_key="f", document=outbound())
    with pytest.raises(ConnectAuthFailed):
        client.get_status("0b7c2a44-9c8e-4a57-9d0c-2f1e5d3b6a10")


def test_a_status_code_outside_the_contract_is_malformed_by_what_was_asked():
    client = _connect_answering(
        lambda request: httpx.Response(302, headers={"Location": "/login"})
    )

    with pytest.raises(ConnectMalformedAnswer, match="302"):
        client.post_document(idempotency_key="r", document=outbound())
    with pytest.raises(ConnectMalformedRead, match="302"):
        client.find_by_idempotency_key("r")


def test_an_unreadable_token_answer_is_retried_and_an_unexpected_status_stops():
    def token(status: int, **kwargs):
        return ConnectClient(
            base_url="http://127.0.0.1:9",
            client_id="client-RX1",
            client_secret="demo-secret-RX1",
            http=httpx.Client(
                transport=httpx.MockTransport(
                    lambda r: httpx.Response(status, **kwargs)
                )
            ),
            token_cache=_TokenCache(),
        )

    with pytest.raises(ConnectMalformedRead, match="expires_in: missing"):
        token(200, json={"access_token": "t"}).organisation("A81001")
    with pytest.raises(ConnectMalformedRead, match="content type text/html"):
        token(200, html="<html>login</html>").organisation("A81001")
    with pytest.raises(ConnectAuthFailed):
        token(302).organisation("A81001")
