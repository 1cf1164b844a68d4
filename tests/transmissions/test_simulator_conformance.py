"""schemathesis drives the simulator with the Connect contract and finds no failures."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.schemathesis_run import run_schemathesis

CONTRACT = (
    Path(__file__).resolve().parents[2]
    / "transmissions"
    / "channels"
    / "connect"
    / "simulator"
    / "connect-api.yaml"
)
SHARED_CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "connect-api.yaml"
PROBLEM = {
    "description": "Error (RFC 9457 problem details)",
    "content": {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    },
}

# Connect validates beyond what JSON Schema can say (DC01 rules, DC02/DC03, sizes):
# a schema-valid body may rightly get 400 from these operations.
CONFIG = """
[[operations]]
include-name = "POST /api/documents"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "429"]

[[operations]]
include-name = "POST /api/documents/{documentGuid}/resend"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409"]
"""


def served_contract() -> dict:
    """The contract plus the answers it implies but does not write down.

    Every operation under the global bearer scheme can answer 401; every operation
    addressed by a document GUID can answer 404; every operation that takes input can
    refuse malformed input with 400.
    """
    contract = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    for path, operations in contract["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            secured = operation.get("security", contract.get("security")) != []
            if secured:
                responses.setdefault("401", PROBLEM)
            if "{documentGuid}" in path:
                responses.setdefault("404", PROBLEM)
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", PROBLEM)
    return contract


def test_vendored_contract_matches_the_shared_one():
    if not SHARED_CONTRACT.exists():
        return  # the shared folder only sits beside a checkout in development and CI
    assert CONTRACT.read_bytes() == SHARED_CONTRACT.read_bytes()


def test_simulator_conforms_to_the_connect_contract(simulator, tmp_path):
    schema = tmp_path / "connect-api.served.yaml"
    schema.write_text(yaml.safe_dump(served_contract()), encoding="utf-8")
    returncode, report = run_schemathesis(
        schema=str(schema),
        base_url=simulator.url,
        header=f"Authorization: Bearer {simulator.token()}",
        workdir=tmp_path,
        config_toml=CONFIG,
    )
    assert returncode == 0, report
    assert "Tested: 8" in report, report
    assert "No issues found" in report or " failed" not in report, report
