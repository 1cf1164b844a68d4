"""Malformed answers from the real simulator over HTTP (a ``malformed:<case>``
behaviour per case): each ends in the state its error class says, none in a bare
exception. A spoiled answer to a POST is ambiguous (the simulator stored the
document): outcome unknown, settled by key to one copy. A spoiled status read is
retryable: nothing changes, and the next read moves the document on."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import time_machine
from django.utils import timezone

from casework.models import WorkItem
from docflow.models import DocumentStatus
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
    simulator_stats,
)
from tests.transmissions.test_connect_client import outbound
from transmissions.channels.connect.client import ConnectClient, Timeouts, _TokenCache
from transmissions.channels.connect.errors import (
    ConnectMalformedAnswer,
    ConnectMalformedRead,
    ConnectOutcomeUnknown,
    ConnectUnavailable,
)
from transmissions.channels.connect.simulator.malformed import CASES
from transmissions.channels.connect.tracking.polling import transmissions_poll_due
from transmissions.models import Transmission, TransmissionState
from transmissions.pipeline.sending import SendOutcome, document_send, documents_send
from transmissions.pipeline.settling import Settled, outcome_unknown_settle

S = DocumentStatus
DESTINATION = "A81001"


def behave(simulator, behaviour: str, ods_code: str = DESTINATION) -> None:
    response = httpx.put(
        f"{simulator.url}/_sim/organisations/{ods_code}",
        json={"behaviour": behaviour},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def client(simulator):
    connect = ConnectClient(
        base_url=simulator.url,
        client_id="client-RX1",
        client_secret="demo-secret-RX1",
        timeouts=Timeouts(read=2.0),
        token_cache=_TokenCache(),
    )
    yield connect
    connect.close()


@pytest.fixture
def connected(simulator, settings, monkeypatch, sending_organisation):
    # Real time in the simulator: a settled document is found as just received.
    connect_to(simulator, settings, monkeypatch, multiplier=1)
    directory_from_scenario()
    return simulator


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_spoiled_answer_to_a_post_is_ambiguous_and_connect_holds_one_copy(
    client, simulator, case
):
    behave(simulator, f"malformed:{case}")

    with pytest.raises(ConnectMalformedAnswer) as caught:
        client.post_document(idempotency_key=f"m-{case}", document=outbound())

    assert isinstance(caught.value, ConnectOutcomeUnknown)
    assert caught.value.retry_safe is False
    assert caught.value.error_class == "malformed"
    found = client.find_by_idempotency_key(f"m-{case}")
    assert found is not None and found.status_code == 4002
    assert simulator_stats(simulator)["documents"] == 1


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_spoiled_status_read_is_safe_to_retry(client, simulator, case):
    status, _ = client.post_document(idempotency_key=f"r-{case}", document=outbound())
    behave(simulator, f"malformed:{case}")

    with pytest.raises(ConnectMalformedRead) as caught:
        client.get_status(status.guid)

    assert isinstance(caught.value, ConnectUnavailable)
    assert caught.value.retry_safe is True
    behave(simulator, "accept")
    assert client.get_status(status.guid).guid == status.guid


def test_an_unreadable_answer_names_what_was_wrong_but_no_value(client, simulator):
    behave(simulator, "malformed:no_guid")

    with pytest.raises(ConnectMalformedAnswer) as caught:
        client.post_document(idempotency_key="named", document=outbound())

    message = str(caught.value)
    assert "DocumentGuid: missing" in message
    assert "9990000018" not in message and "Testpatient" not in message


@pytest.fixture(params=["alone", "in a batch"])
def send(request):
    if request.param == "alone":
        return lambda document_id: document_send(document_id=document_id)

    def in_a_batch(document_id):
        [result] = documents_send(document_ids=[document_id])
        return result

    return in_a_batch


def open_items(document) -> list[tuple[str, str]]:
    return list(
        WorkItem.objects.filter(document=document, status="open").values_list(
            "category", "status"
        )
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_spoiled_answer_to_a_send_is_settled_by_key_to_received(
    send, connected, sending_organisation, case
):
    behave(connected, f"malformed:{case}")
    document = ready_document(sending_organisation, DESTINATION)

    result = send(document.pk)

    document.refresh_from_db()
    transmission = Transmission.objects.get(document=document)
    assert result.outcome == SendOutcome.OUTCOME_UNKNOWN
    assert document.status == S.OUTCOME_UNKNOWN
    assert transmission.state == TransmissionState.PENDING
    assert transmission.last_error_class == "malformed"
    assert open_items(document) == [("outcome_unknown", "open")]

    settled = outcome_unknown_settle(document_id=document.pk)

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert settled == Settled.FOUND
    assert document.status == S.RECEIVED
    assert transmission.state == TransmissionState.POSTED
    assert transmission.external_id
    assert open_items(document) == []
    stats = simulator_stats(connected)
    assert (stats["documents"], stats["distinct_keys"]) == (1, 1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_spoiled_status_poll_changes_nothing_and_is_asked_again(
    connected, sending_organisation, case
):
    document = ready_document(sending_organisation, DESTINATION)
    assert document_send(document_id=document.pk).outcome == SendOutcome.POSTED
    behave(connected, f"malformed:{case}")
    httpx.put(f"{connected.url}/_sim/time", json={"multiplier": 1e9})
    transmission = Transmission.objects.get(document=document)
    due = timezone.now() + dt.timedelta(minutes=5)

    with time_machine.travel(due):
        polled = transmissions_poll_due()

    document.refresh_from_db()
    transmission.refresh_from_db()
    assert polled == 0
    assert document.status == S.RECEIVED
    assert (transmission.state, transmission.status_code) == (
        TransmissionState.POSTED,
        4002,
    )
    assert transmission.next_poll_at <= due  # still due: asked again next round

    behave(connected, "accept")
    with time_machine.travel(due):
        polled = transmissions_poll_due()
    document.refresh_from_db()
    assert polled == 1
    assert document.status == S.ACCEPTED
