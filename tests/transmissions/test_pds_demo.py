"""The demo's rejections and the PDS simulator's demo patients agree: every demo
document its practice rejects with a reason a re-trace helps with has a PDS
answer, and the urgent REJ01 of the browser journey has moved to a different,
active demo practice."""

from __future__ import annotations

import json
from pathlib import Path

from docflow.demo.documents import DOCUMENTS, URGENT_DOCUMENTS, demo_nhs_number
from docflow.demo.organisations import DESTINATIONS
from tests.pds_simulator import demo_patients

SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "transmissions"
    / "channels"
    / "connect"
    / "simulator"
    / "scenarios"
    / "demo.json"
)
TRACEABLE = {"REJ01", "REJ02", "REJ06", "REJ07"}


def rejection_codes() -> dict[str, str]:
    scenario = json.loads(SCENARIO.read_text(encoding="utf-8"))
    return {
        practice["ods_code"]: practice["behaviour"].partition(":")[2]
        for practice in scenario["organisations"]
        if practice["behaviour"].startswith("reject")
    }


def test_every_traceable_demo_rejection_has_a_pds_demo_patient():
    patients = demo_patients()
    codes = rejection_codes()
    traced = [
        index
        for index, (_, destination, *_rest) in enumerate(DOCUMENTS, start=1)
        if codes.get(destination) in TRACEABLE
    ]
    assert len(traced) >= 5
    for index in traced:
        assert demo_nhs_number(index) in patients, f"demo-{index:03d}"
    cases = {patients[demo_nhs_number(index)]["case"] for index in traced}
    assert {"moved", "deceased", "restricted", "superseded", "unavailable"} <= cases
    assert {codes[DOCUMENTS[index - 1][1]] for index in traced} >= {"REJ01", "REJ02"}


def test_the_urgent_rej01_has_moved_to_another_active_demo_practice():
    codes = rejection_codes()
    urgent = [
        index
        for index, (_, destination, *_rest) in enumerate(DOCUMENTS, start=1)
        if index in URGENT_DOCUMENTS and codes.get(destination) == "REJ01"
    ]
    assert urgent == [6] == sorted(URGENT_DOCUMENTS)
    _, destination, *_ = DOCUMENTS[5]
    patient = demo_patients()[demo_nhs_number(6)]
    active = {code for code, _, endpoint, status in DESTINATIONS if status == "active"}
    assert patient["practice"] != destination
    assert patient["practice"] in active
    assert dict((c, e) for c, _, e, _ in DESTINATIONS)[patient["practice"]]
