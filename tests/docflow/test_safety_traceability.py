"""The hazard log is traced to the suite: every control's tests exist, every hazard
is proved by a test, every hazard marker names a hazard in the log, and every
residual risk above acceptable is justified. Each defect is shown failing on a
temporary hazard log and a temporary test tree."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from django.conf import settings

from docflow.assurance.hazards import (
    ACCEPTABLE,
    HazardLogInvalid,
    hazard_log_load,
    suite_inventory,
    traceability_problems,
)

ROOT = Path(settings.BASE_DIR)

# The hazards the assurance pack must cover, by the words of their titles.
REQUIRED_HAZARDS = (
    "wrong GP practice (wrong ODS code)",
    "wrong GP practice (wrong patient match)",
    "wrong GP practice (mistyped reroute)",
    "Duplicate letter",
    "Lost letter",
    "24-hour discharge summary standard",
    "Content changed by conversion",
    "Wrong version",
    "Rejection not seen",
    "Clinical rejection",
    "Patient identifiers exposed",
    "Unauthorised access",
    "Audit trail altered",
    "Retention failures",
    "Outage with no alert",
    "MESH acknowledgement never arriving",
)

HAZARD = """\
  - id: {id}
    title: A hazard
    description: What goes wrong.
    causes: [A cause]
    effects: [An effect]
    potential_harm: A harm.
    initial: {{severity: Major, likelihood: Medium, risk: 3}}
    controls:
      - description: A control.
        tests: {tests}
    residual: {{severity: {severity}, likelihood: {likelihood}}}
    residual_justification: "{justification}"
    status: Open
    owner: Someone
"""


def write_log(tmp_path: Path, *hazards: str) -> Path:
    path = tmp_path / "hazard-log.yaml"
    path.write_text("system: {name: test}\nhazards:\n" + "".join(hazards))
    return path


def hazard(
    id="HAZ-001",
    tests=("tests/test_sample.py::test_it_works",),
    severity="Major",
    likelihood="Very low",
    justification="",
) -> str:
    return HAZARD.format(
        id=id,
        tests=json.dumps(list(tests)),
        severity=severity,
        likelihood=likelihood,
        justification=justification,
    )


@pytest.fixture
def suite(tmp_path) -> Path:
    """A small test tree: one plain test, one marked with HAZ-001."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_it_works():
                assert True

            @pytest.mark.hazard("HAZ-001")
            def test_it_is_marked():
                assert True
            """
        )
    )
    return tmp_path


def problems_for(log_path: Path, root: Path) -> list[str]:
    return traceability_problems(hazard_log_load(log_path), suite_inventory(root=root))


def test_the_hazard_log_is_traced_to_tests_that_exist():
    log = hazard_log_load()
    assert traceability_problems(log, suite_inventory(root=ROOT)) == []


def test_the_hazard_log_covers_every_hazard_the_assurance_pack_names():
    titles = [h.title for h in hazard_log_load().hazards]
    missing = [w for w in REQUIRED_HAZARDS if not any(w in t for t in titles)]
    assert missing == []


def test_a_consistent_temporary_log_has_no_problems(tmp_path, suite):
    assert problems_for(write_log(tmp_path, hazard()), suite) == []


def test_a_control_naming_a_test_that_does_not_exist_fails(tmp_path, suite):
    log = write_log(
        tmp_path,
        hazard(
            tests=(
                "tests/test_sample.py::test_it_works",
                "tests/test_sample.py::test_gone",
            )
        ),
    )
    assert problems_for(log, suite) == [
        "HAZ-001: control names a test that does not exist: "
        "tests/test_sample.py::test_gone"
    ]


def test_a_hazard_with_no_control_proved_by_a_test_fails(tmp_path, suite):
    log = write_log(tmp_path, hazard(), hazard(id="HAZ-002", tests=()))
    assert problems_for(log, suite) == ["HAZ-002: no control is proved by a test"]


def test_a_marker_alone_proves_a_hazard(tmp_path, suite):
    assert problems_for(write_log(tmp_path, hazard(tests=())), suite) == []


def test_a_marked_test_naming_an_unknown_hazard_fails(tmp_path, suite):
    (suite / "tests" / "test_other.py").write_text(
        'import pytest\n\npytestmark = [pytest.mark.hazard("HAZ-099")]\n\n'
        "def test_something():\n    assert True\n"
    )
    assert problems_for(write_log(tmp_path, hazard()), suite) == [
        "tests/test_other.py::test_something: marked with unknown hazard HAZ-099"
    ]


def test_residual_risk_above_acceptable_without_justification_fails(tmp_path, suite):
    log = write_log(tmp_path, hazard(severity="Major", likelihood="Medium"))
    assert problems_for(log, suite) == [
        "HAZ-001: residual risk 3 (Undesirable) is above acceptable without a "
        "recorded justification"
    ]


def test_residual_risk_above_acceptable_with_a_justification_stands(tmp_path, suite):
    log = write_log(
        tmp_path,
        hazard(
            severity="Major",
            likelihood="Medium",
            justification="Further reduction lies with the deploying trust.",
        ),
    )
    assert problems_for(log, suite) == []
    assert hazard_log_load(log).hazards[0].residual.rating > ACCEPTABLE


def test_a_stated_risk_that_disagrees_with_the_matrix_fails(tmp_path, suite):
    text = hazard().replace(
        "likelihood: Medium, risk: 3", "likelihood: Medium, risk: 1"
    )
    assert problems_for(write_log(tmp_path, text), suite) == [
        "HAZ-001: initial risk is stated as 1 but Major and Medium make 3"
    ]


def test_a_missing_heading_is_refused(tmp_path):
    text = hazard().replace("    owner: Someone\n", "")
    with pytest.raises(HazardLogInvalid, match="missing owner"):
        hazard_log_load(write_log(tmp_path, text))


def test_parametrised_and_class_tests_are_named_by_their_node_ids(tmp_path):
    tests = tmp_path / "tests" / "area"
    tests.mkdir(parents=True)
    (tests / "test_shapes.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.hazard("HAZ-001")
            class TestShapes:
                def test_square(self):
                    assert True

            @pytest.mark.parametrize("n", [1, 2])
            def test_numbers(n):
                assert n
            """
        )
    )
    inventory = suite_inventory(root=tmp_path)
    assert inventory.node_ids == {
        "tests/area/test_shapes.py::TestShapes::test_square",
        "tests/area/test_shapes.py::test_numbers",
    }
    assert inventory.marked_for("HAZ-001") == [
        "tests/area/test_shapes.py::TestShapes::test_square"
    ]
    log = write_log(
        tmp_path, hazard(tests=("tests/area/test_shapes.py::test_numbers[2]",))
    )
    assert problems_for(log, tmp_path) == []


def test_the_safety_page_lists_exactly_the_hazards_of_the_log():
    text = (ROOT / "docs" / "safety" / "index.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| (HAZ-\d{3}) \| (.+?) \|$", text, flags=re.M))
    assert listed == {h.id: h.title for h in hazard_log_load().hazards}
