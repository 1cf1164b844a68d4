"""The PDS client against the real PDS simulator over HTTP, one test per case."""

from __future__ import annotations

import datetime
import socket

import httpx
import pytest

from tests.pds_simulator import CLIENT_TIMEOUT_SECONDS
from transmissions.pds.client import (
    PdsClient,
    PdsCredentials,
    answer_read,
    pds_base_url_check,
)
from transmissions.pds.errors import (
    PdsAuthFailed,
    PdsConfigurationError,
    PdsInvalidNhsNumber,
    PdsMalformedAnswer,
    PdsPatientInvalidated,
    PdsPatientNotFound,
    PdsTimeout,
    PdsUnavailable,
)
from transmissions.pds.simulator import PdsSimulator

NOT_FOUND = "9991001697"  # valid, and not among the demo patients


@pytest.fixture
def client(pds_simulator):
    with PdsClient(
        base_url=pds_simulator.url, timeout=CLIENT_TIMEOUT_SECONDS
    ) as client:
        yield client


def test_registered_patient_names_the_practice_and_since_date(client, pds_simulator):
    number = "9991000267"
    record = client.patient_get(nhs_number=number)
    assert record.nhs_number == record.requested_nhs_number == number
    assert not record.superseded
    assert (record.practice_ods_code, record.practice_since) == (
        "A81001",
        datetime.date(2019, 4, 1),
    )
    assert record.practice_until is None
    assert not record.restricted
    assert not record.deceased
    assert record.version_id == "1"


def test_moved_patient_names_the_new_practice(client, pds_simulator):
    record = client.patient_get(nhs_number=pds_simulator.number("moved"))
    assert record.practice_ods_code == "A81002"
    assert record.practice_since == datetime.date(2026, 11, 3)


def test_deceased_patient_is_deceased_with_the_date(client):
    full = client.patient_get(nhs_number="9990001197")
    assert full.deceased
    assert full.deceased_on == datetime.date(2026, 10, 20)
    date_only = client.patient_get(nhs_number="9991000526")
    assert date_only.deceased
    assert date_only.deceased_on == datetime.date(2026, 8, 1)


def test_restricted_patient_is_flagged_and_has_no_practice(client, pds_simulator):
    record = client.patient_get(nhs_number=pds_simulator.number("restricted"))
    assert record.restricted
    assert record.practice_ods_code == ""
    assert record.practice_since is None


def test_patient_without_a_practice_is_not_restricted(client):
    record = client.patient_get(nhs_number="9000000033")
    assert not record.restricted
    assert record.practice_ods_code == ""


def test_superseded_number_answers_with_the_superseding_record(client):
    record = client.patient_get(nhs_number="9991000798")
    assert record.superseded
    assert record.requested_nhs_number == "9991000798"
    assert record.nhs_number == "9991000917"
    assert record.practice_ods_code == "A81003"


def test_invalidated_number_is_its_own_not_found(client, pds_simulator):
    with pytest.raises(PdsPatientInvalidated) as caught:
        client.patient_get(nhs_number=pds_simulator.number("invalidated"))
    assert not caught.value.retry_safe
    assert caught.value.kind == "invalidated"


def test_unknown_number_is_not_found(client):
    with pytest.raises(PdsPatientNotFound) as caught:
        client.patient_get(nhs_number=NOT_FOUND)
    assert type(caught.value) is PdsPatientNotFound
    assert not caught.value.retry_safe


def test_invalid_number_is_refused_without_asking(client):
    with pytest.raises(PdsInvalidNhsNumber, match="PDS was not asked"):
        client.patient_get(nhs_number="9000000000")


def test_simulator_answers_400_invalid_resource_id_the_client_reads_it(pds_simulator):
    # The client refuses invalid numbers itself; this checks its reading of PDS's 400.
    response = httpx.get(
        f"{pds_simulator.url}/Patient/9000000000",
        headers={"X-Request-ID": "60E0B220-8136-4CA5-AE46-1D97EF59D068"},
    )
    assert response.status_code == 400
    with pytest.raises(PdsInvalidNhsNumber, match="PDS: not a valid"):
        answer_read(response, requested_nhs_number="9000000000")


def test_service_unavailable_is_retry_safe(client, pds_simulator):
    with pytest.raises(PdsUnavailable, match="503") as caught:
        client.patient_get(nhs_number=pds_simulator.number("unavailable"))
    assert caught.value.retry_safe
    assert caught.value.kind == "unavailable"


def test_throttled_is_unavailable_with_retry_after(client, pds_simulator):
    with pytest.raises(PdsUnavailable, match="429") as caught:
        client.patient_get(nhs_number=pds_simulator.number("throttled"))
    assert caught.value.retry_after == 5.0


def test_slow_answer_times_out_and_is_retry_safe(client, pds_simulator):
    with pytest.raises(PdsTimeout) as caught:
        client.patient_get(nhs_number=pds_simulator.number("timeout"))
    assert caught.value.retry_safe


def test_malformed_answer_names_members_never_values(client, pds_simulator):
    number = pds_simulator.number("malformed")
    with pytest.raises(PdsMalformedAnswer) as caught:
        client.patient_get(nhs_number=number)
    message = str(caught.value)
    assert "id: missing" in message
    assert "generalPractitioner.0.identifier.value: missing" in message
    assert number not in message
    assert caught.value.retry_safe


def test_answer_that_is_not_fhir_json_is_malformed(client, pds_simulator):
    with pytest.raises(PdsMalformedAnswer, match="content type text/html, not JSON"):
        client.patient_get(nhs_number=pds_simulator.number("not_json"))


def test_nobody_listening_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PdsUnavailable, match="could not be reached"):
        PdsClient(base_url=f"http://127.0.0.1:{port}").patient_get(
            nhs_number="9991000267"
        )


def test_sends_a_request_id_and_mirrors_correlation_id(pds_simulator):
    seen: list[httpx.Response] = []
    http = httpx.Client(event_hooks={"response": [seen.append]})
    client = PdsClient(base_url=pds_simulator.url, http=http)
    client.patient_get(nhs_number="9991000267", correlation_id="trace-1")
    response = seen[0]
    assert response.headers["X-Request-Id"] == response.request.headers["X-Request-ID"]
    assert len(response.request.headers["X-Request-ID"]) == 36
    assert response.headers["X-Correlation-Id"] == "trace-1"
    assert "Authorization" not in response.request.headers
    assert response.headers["ETag"] == 'W/"1"'


def test_a_bearer_token_is_sent_and_a_bad_authorization_is_refused(pds_simulator):
    seen: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [seen.append]})
    client = PdsClient(
        base_url=pds_simulator.url,
        http=http,
        credentials=PdsCredentials(access_token="abc123", end_user_ods_code="RX1"),
    )
    client.patient_get(nhs_number="9991000267")
    assert seen[0].headers["Authorization"] == "Bearer abc123"
    assert seen[0].headers["NHSD-End-User-Organisation-ODS"] == "RX1"
    broken = PdsClient(
        base_url=pds_simulator.url, credentials=PdsCredentials(access_token="a b")
    )
    with pytest.raises(PdsAuthFailed, match="ACCESS_DENIED"):
        broken.patient_get(nhs_number="9991000267")


def test_from_settings_uses_the_configured_url(pds_simulator):
    with PdsClient.from_settings() as client:
        assert client.base_url == pds_simulator.url
        assert client.patient_get(nhs_number="9991000267").practice_ods_code


@pytest.mark.parametrize(
    "url",
    ["http://pds.example.nhs.uk", "ftp://127.0.0.1", "", "https://"],
)
def test_plain_http_is_refused_except_to_loopback(url):
    with pytest.raises(PdsConfigurationError):
        pds_base_url_check(url)
    assert pds_base_url_check("http://127.0.0.1:8200/") == "http://127.0.0.1:8200"
    assert pds_base_url_check("https://api.service.nhs.uk/x/") == (
        "https://api.service.nhs.uk/x"
    )


def test_simulator_header_rules_follow_the_specification(pds_simulator):
    url = f"{pds_simulator.url}/Patient/9991000267"
    missing = httpx.get(url)
    assert missing.status_code == 400
    assert "MISSING_VALUE" in missing.text
    invalid = httpx.get(url, headers={"X-Request-ID": "not-a-uuid"})
    assert invalid.status_code == 400
    assert "INVALID_VALUE" in invalid.text
    assert missing.headers["Content-Type"] == "application/fhir+json"
    patch = httpx.patch(
        url, headers={"X-Request-ID": "60E0B220-8136-4CA5-AE46-1D97EF59D068"}
    )
    assert patch.status_code == 405


def test_demo_patients_file_loads_with_every_case():
    cases = {patient.get("case") for patient in PdsSimulator.load().patients.values()}
    assert {
        "registered",
        "moved",
        "no_practice",
        "deceased",
        "restricted",
        "superseded",
        "invalidated",
        "unavailable",
        "timeout",
        "throttled",
        "malformed",
        "not_json",
    } <= cases
