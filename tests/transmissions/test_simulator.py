"""The Connect simulator over real HTTP: contract, behaviours, persistence."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from transmissions.channels.connect.simulator.app import ConnectSimulator
from transmissions.channels.connect.simulator.behaviours import (
    Behaviour,
    BehaviourError,
)
from transmissions.channels.connect.simulator.malformed import CASES as MALFORMED_CASES

CONTENT = b"%PDF-1.4 simulated letter"


def inbound(recipient: str = "A81001", content: bytes = CONTENT, **overrides) -> dict:
    body = {
        "CaptureSource": 2,
        "Sender": {"OdsCode": "RX1", "Organisation": "Example Trust"},
        "RecipientOdsCode": recipient,
        "Patient": {
            "NhsNumber": "9990000018",
            "FamilyName": "Testpatient",
            "BirthDate": "1950-03-01",
        },
        "Document": {
            "FileExtension": "pdf",
            "FileContent": base64.b64encode(content).decode(),
            "FileHash": hashlib.sha256(content).hexdigest(),
            "Description": "Discharge summary",
            "EventDate": "2024-01-15",
        },
    }
    body.update(overrides)
    return body


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_token_needs_the_right_client_secret(simulator):
    assert simulator.token()
    import httpx

    response = httpx.post(
        f"{simulator.url}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "client-RX1",
            "client_secret": "wrong",
        },
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_api_calls_without_a_token_are_401(simulator):
    import httpx

    response = httpx.get(f"{simulator.url}/api/organisations/A81001")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("ods_code", "active", "receiving", "endpoint"),
    [
        ("A81001", True, True, "Docman10"),
        ("A81003", True, True, "EmisMesh"),
        ("A81006", False, True, "Docman10"),
        ("A81007", True, False, "Docman10"),
    ],
)
def test_organisation_lookup_reports_activity_and_endpoint(
    simulator, ods_code, active, receiving, endpoint
):
    with simulator.client() as client:
        body = client.get(f"/api/organisations/{ods_code}").json()
    assert body["IsActive"] is active
    assert body["IsReceivingOrganisation"] is receiving
    assert body["EndpointType"] == endpoint


def test_unknown_organisation_is_404(simulator):
    with simulator.client() as client:
        assert client.get("/api/organisations/Z99999").status_code == 404


def test_post_is_received_and_replay_returns_the_same_document(simulator):
    with simulator.client() as client:
        first = client.post(
            "/api/documents", json=inbound(), headers={"Idempotency-Key": "k"}
        )
        again = client.post(
            "/api/documents", json=inbound(), headers={"Idempotency-Key": "k"}
        )
        other = client.post(
            "/api/documents",
            json=inbound(Notes="different"),
            headers={"Idempotency-Key": "k"},
        )
        found = client.get("/api/documents", params={"idempotencyKey": "k"}).json()
    assert first.status_code == 201
    assert first.json()["StatusCode"] == 4002
    assert again.status_code == 200
    assert again.json()["DocumentGuid"] == first.json()["DocumentGuid"]
    assert other.status_code == 409
    assert [d["DocumentGuid"] for d in found["Documents"]] == [
        first.json()["DocumentGuid"]
    ]
    assert simulator.app.store.document_count()["documents"] == 1


def _codes(response) -> list[str]:
    return [error["Code"] for error in response.json()["ValidationErrors"]]


def _broken(path: str, value):
    body = inbound()
    target = body
    *parents, leaf = path.split(".")
    for parent in parents:
        target = target[parent]
    if value is None:
        del target[leaf]
    else:
        target[leaf] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("Patient", None, "DC01.01"),
        ("Document", None, "DC01.02"),
        ("Notes", "n" * 256, "DC01.03"),
        ("Sender.Organisation", "o" * 256, "DC01.04"),
        ("Sender.Department", "d" * 256, "DC01.05"),
        ("Sender.Person", "p" * 256, "DC01.06"),
        ("Patient.FamilyName", "f" * 256, "DC01.07"),
        ("Patient.GivenNames", "g" * 256, "DC01.08"),
        ("Patient.BirthDate", "2999-01-01", "DC01.09"),
        ("ClinicalCodes", [{"Scheme": "ICD10", "Code": "X"}], "DC01.11"),
        ("CaptureSource", 100, "DC01.20"),
        ("RecipientOdsCode", "a!", "DC01.21"),
        ("Sender.OdsCode", "", "DC01.22"),
        ("Document.FileExtension", "", "DC01.30"),
        ("Document.FileContent", "", "DC01.31"),
        ("Document.FileExtension", "x" * 11, "DC01.32"),
        ("Document.FileHash", "0" * 64, "DC01.33"),
        ("Document.Description", "", "DC01.40"),
        ("Document.EventDate", None, "DC01.41"),
        ("Document.FolderName", "f" * 51, "DC01.42"),
        ("Document.Description", "d" * 256, "DC01.43"),
    ],
)
def test_each_field_rule_returns_its_dc01_code(simulator, path, value, code):
    with simulator.client() as client:
        response = client.post(
            "/api/documents",
            json=_broken(path, value),
            headers={"Idempotency-Key": code},
        )
    assert response.status_code == 400
    assert code in _codes(response)
    assert simulator.app.store.document_count()["documents"] == 0


@pytest.mark.parametrize(
    ("recipient", "code"),
    [("A81006", "DC02"), ("Z99999", "DC02"), ("A81007", "DC03")],
)
def test_destination_rules_return_dc02_and_dc03(simulator, recipient, code):
    with simulator.client() as client:
        response = client.post(
            "/api/documents", json=inbound(recipient), headers={"Idempotency-Key": "x"}
        )
    assert response.status_code == 400
    assert _codes(response) == [code]


def test_size_limit_returns_sim01(simulator):
    with simulator.client() as client:
        big = client.post(
            "/api/documents",
            json=inbound("A81013", content=b"%PDF" + b"0" * 200_001),
            headers={"Idempotency-Key": "big"},
        )
        small = client.post(
            "/api/documents",
            json=inbound("A81013"),
            headers={"Idempotency-Key": "small"},
        )
    assert _codes(big) == ["SIM01"]
    assert small.status_code == 201


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("A81001", [4002, 4003, 4010]),
        ("A81003", [4002, 4003]),
        ("A81005", [4002, 4003, 4005]),
        ("A81008", [4002, 5000]),
        ("A81009", [4002, 7000]),
        ("A81012", [4002, 4003]),
    ],
)
def test_behaviours_play_out_on_the_change_feed(simulator, recipient, expected):
    with simulator.client() as client:
        posted = client.post(
            "/api/documents", json=inbound(recipient), headers={"Idempotency-Key": "b"}
        ).json()
        simulator.app.store.advance(now=later(365 * 24 * 3600))
        changes = client.get("/api/documents/changes", params={"limit": 50}).json()
        status = client.get(f"/api/documents/{posted['DocumentGuid']}").json()
    assert [c["StatusCode"] for c in changes["Changes"]] == expected
    assert status["StatusCode"] == expected[-1]
    if expected[-1] == 4005:
        assert status["Rejection"]["Code"] == "REJ01"


def test_change_feed_pages_with_its_cursor(simulator):
    with simulator.client() as client:
        for n in range(3):
            client.post(
                "/api/documents", json=inbound(), headers={"Idempotency-Key": f"c{n}"}
            )
        first = client.get("/api/documents/changes", params={"limit": 2}).json()
        second = client.get(
            "/api/documents/changes", params={"limit": 2, "cursor": first["NextCursor"]}
        ).json()
        empty = client.get(
            "/api/documents/changes", params={"cursor": second["NextCursor"]}
        ).json()
    assert len(first["Changes"]) == 2
    assert len(second["Changes"]) == 1
    assert empty["Changes"] == []
    assert empty["NextCursor"] == second["NextCursor"]


def test_time_multiplier_compresses_the_lifecycle(simulator):
    import httpx

    store = simulator.app.store
    httpx.put(f"{simulator.url}/_sim/time", json={"multiplier": 3600})
    with simulator.client() as client:
        guid = client.post(
            "/api/documents", json=inbound(), headers={"Idempotency-Key": "t"}
        ).json()["DocumentGuid"]
    # 60 s + 600 s simulated is 0.18 s real at x3600.
    store.advance(now=later(0.5))
    assert store.document_get(guid)["status_code"] == 4010


def test_resend_issues_a_new_guid_linked_to_the_old_and_resolve_closes_it(simulator):
    with simulator.client() as client:
        rejected = client.post(
            "/api/documents", json=inbound("A81005"), headers={"Idempotency-Key": "r"}
        ).json()["DocumentGuid"]
        early = client.post(
            f"/api/documents/{rejected}/resend", headers={"Idempotency-Key": "r2"}
        )
        simulator.app.store.advance(now=later(365 * 24 * 3600))
        resent = client.post(
            f"/api/documents/{rejected}/resend",
            json={"RecipientOdsCode": "A81001"},
            headers={"Idempotency-Key": "r2"},
        )
        resolved = client.post(
            f"/api/documents/{rejected}/resolve", json={"ResolutionNote": "Rerouted"}
        )
        twice = client.post(
            f"/api/documents/{rejected}/resolve", json={"ResolutionNote": "Again"}
        )
    assert early.status_code == 409
    assert resent.status_code == 201
    assert resent.json()["ResendOf"] == rejected
    assert resent.json()["RecipientOdsCode"] == "A81001"
    assert resent.json()["DocumentGuid"] != rejected
    assert resolved.json()["StatusCode"] == 6000
    assert twice.status_code == 409


def test_flaky_destination_mixes_503_429_and_late_answers(simulator):
    statuses = []
    with simulator.client() as client:
        for n in range(60):
            response = client.post(
                "/api/documents",
                json=inbound("A81010"),
                headers={"Idempotency-Key": f"f{n}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "1"
    assert {503, 429, 201} <= set(statuses)
    created = statuses.count(201)
    assert simulator.app.store.document_count()["documents"] == created


def test_state_survives_a_restart(simulator):
    with simulator.client() as client:
        guid = client.post(
            "/api/documents", json=inbound(), headers={"Idempotency-Key": "p"}
        ).json()["DocumentGuid"]
    restarted = ConnectSimulator(
        scenario=simulator.app.scenario, state_path=simulator.state_path
    )
    assert restarted.store.document_get(guid)["recipient"] == "A81001"
    row, created = restarted.store.document_create(
        client_id="client-RX1",
        key="p",
        body_hash=restarted.store.document_get(guid)["body_hash"],
        recipient="A81001",
        behaviour=Behaviour.parse("accept"),
        behaviour_spec="accept",
    )
    assert created is False
    assert row["guid"] == guid


@pytest.mark.parametrize(
    "spec",
    ["explode", "reject:REJ42", "flaky:2", "size_limit:x", "malformed", "malformed:x"],
)
def test_unknown_behaviours_are_refused(spec):
    with pytest.raises(BehaviourError):
        Behaviour.parse(spec)


def test_malformed_behaviours_name_their_case_and_play_out_as_accept():
    for case in MALFORMED_CASES:
        behaviour = Behaviour.parse(f"malformed:{case}")
        assert (behaviour.kind, behaviour.malformed) == ("malformed", case)
        assert behaviour.lifecycle() == Behaviour.parse("accept").lifecycle()


def test_a_malformed_destination_stores_the_document_and_spoils_only_its_answers(
    simulator,
):
    http = simulator.client()
    http.put("/_sim/organisations/A81001", json={"behaviour": "malformed:html_200"})

    posted = http.post(
        "/api/documents", json=inbound(), headers={"Idempotency-Key": "spoiled-1"}
    )
    found = http.get("/api/documents", params={"idempotencyKey": "spoiled-1"})

    assert posted.status_code == 200
    assert posted.headers["Content-Type"].startswith("text/html")
    [document] = found.json()["Documents"]
    assert document["StatusCode"] == 4002
    read = http.get(f"/api/documents/{document['DocumentGuid']}")
    assert read.headers["Content-Type"].startswith("text/html")
    assert http.get("/_sim/stats").json()["documents"] == 1
