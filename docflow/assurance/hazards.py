"""The hazard log (``docs/safety/hazard-log.yaml``) and its traceability to tests.

A hazard is traced when at least one of its controls names a test that exists (a
pytest node id) or a test carries ``@pytest.mark.hazard("HAZ-00N")``; every test a
control names must exist; every marker must name a hazard in the log; and a
residual risk above "acceptable" needs a recorded justification. The risk of each
severity and likelihood is the DCB0129 matrix below, so a stated risk that
disagrees with it is a problem too.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings

SEVERITIES = ("Minor", "Significant", "Considerable", "Major", "Catastrophic")
LIKELIHOODS = ("Very low", "Low", "Medium", "High", "Very high")

# DCB0129 risk matrix: likelihood (rows) by severity (columns) gives a rating
# 1 (acceptable) to 5 (unacceptable).
RISK_MATRIX = {
    "Very high": (3, 4, 4, 5, 5),
    "High": (2, 3, 3, 4, 5),
    "Medium": (2, 2, 3, 3, 4),
    "Low": (1, 2, 2, 3, 4),
    "Very low": (1, 1, 2, 2, 3),
}
RISK_NAMES = {
    1: "Acceptable",
    2: "Acceptable where further reduction is impractical",
    3: "Undesirable",
    4: "Unacceptable",
    5: "Unacceptable",
}
# The highest rating that may stand without a recorded justification.
ACCEPTABLE = 2
STATUSES = ("Open", "Closed", "Transferred")
HAZARD_ID = re.compile(r"^HAZ-\d{3}$")
REQUIRED = (
    "id",
    "title",
    "description",
    "causes",
    "effects",
    "potential_harm",
    "initial",
    "controls",
    "residual",
    "status",
    "owner",
)


class HazardLogInvalid(ValueError):
    """The hazard log file cannot be read as a hazard log."""


@dataclass(frozen=True)
class Risk:
    severity: str
    likelihood: str
    stated: int | None

    @property
    def rating(self) -> int:
        return RISK_MATRIX[self.likelihood][SEVERITIES.index(self.severity)]

    @property
    def name(self) -> str:
        return RISK_NAMES[self.rating]


@dataclass(frozen=True)
class Control:
    description: str
    kind: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Hazard:
    id: str
    title: str
    description: str
    causes: tuple[str, ...]
    effects: tuple[str, ...]
    potential_harm: str
    initial: Risk
    controls: tuple[Control, ...]
    residual: Risk
    residual_justification: str
    status: str
    owner: str


@dataclass(frozen=True)
class HazardLog:
    system: dict
    hazards: tuple[Hazard, ...]

    def get(self, hazard_id: str) -> Hazard | None:
        return next((h for h in self.hazards if h.id == hazard_id), None)


@dataclass
class SuiteInventory:
    """What the test files define: node ids, and the hazards each test is marked
    with."""

    node_ids: set[str] = field(default_factory=set)
    markers: dict[str, set[str]] = field(default_factory=dict)

    def marked_for(self, hazard_id: str) -> list[str]:
        return sorted(n for n, ids in self.markers.items() if hazard_id in ids)


def hazard_log_path() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "safety" / "hazard-log.yaml"


def _risk(raw, where: str) -> Risk:
    if not isinstance(raw, dict):
        raise HazardLogInvalid(f"{where}: expected severity and likelihood")
    severity, likelihood = raw.get("severity"), raw.get("likelihood")
    if severity not in SEVERITIES:
        raise HazardLogInvalid(f"{where}: severity {severity!r} not in {SEVERITIES}")
    if likelihood not in LIKELIHOODS:
        raise HazardLogInvalid(
            f"{where}: likelihood {likelihood!r} not in {LIKELIHOODS}"
        )
    return Risk(severity=severity, likelihood=likelihood, stated=raw.get("risk"))


def _strings(raw) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    return tuple(str(item) for item in raw or ())


def hazard_log_load(path: Path | None = None) -> HazardLog:
    """Read the hazard log; a missing heading or an unknown scale value is an error."""
    path = path or hazard_log_path()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise HazardLogInvalid(f"{path}: {error}") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("hazards"), list):
        raise HazardLogInvalid(f"{path}: expected a mapping with a list of hazards")
    hazards = []
    for entry in raw["hazards"]:
        missing = [key for key in REQUIRED if key not in entry]
        where = entry.get("id", "?")
        if missing:
            raise HazardLogInvalid(f"{where}: missing {', '.join(missing)}")
        controls = tuple(
            Control(
                description=str(control.get("description", "")),
                kind=str(control.get("kind", "design")),
                tests=_strings(control.get("tests")),
            )
            for control in entry["controls"] or ()
        )
        hazards.append(
            Hazard(
                id=str(entry["id"]),
                title=str(entry["title"]),
                description=str(entry["description"]).strip(),
                causes=_strings(entry["causes"]),
                effects=_strings(entry["effects"]),
                potential_harm=str(entry["potential_harm"]).strip(),
                initial=_risk(entry["initial"], f"{where} initial"),
                controls=controls,
                residual=_risk(entry["residual"], f"{where} residual"),
                residual_justification=str(
                    entry.get("residual_justification") or ""
                ).strip(),
                status=str(entry["status"]),
                owner=str(entry["owner"]),
            )
        )
    return HazardLog(system=raw.get("system") or {}, hazards=tuple(hazards))


def _hazard_marks(decorators) -> set[str]:
    """The hazard ids in ``pytest.mark.hazard(...)`` among these expressions."""
    found = set()
    for node in decorators:
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "hazard"
                and isinstance(call.func.value, ast.Attribute)
                and call.func.value.attr == "mark"
            ):
                found.update(
                    arg.value
                    for arg in call.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                )
    return found


def suite_inventory(*, root: Path, tests_dir: str = "tests") -> SuiteInventory:
    """Every test function under ``root/tests_dir`` by node id, read from the source
    (nothing imported), with the hazards each is marked with (its own markers,
    its class's, and the module's ``pytestmark``)."""
    inventory = SuiteInventory()
    for path in sorted((root / tests_dir).rglob("test_*.py")):
        relative = path.relative_to(root).as_posix()
        module = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        module_marks: set[str] = set()
        for statement in module.body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "pytestmark"
                for target in statement.targets
            ):
                module_marks |= _hazard_marks([statement.value])

        def add(node_id: str, marks: set[str]) -> None:
            inventory.node_ids.add(node_id)
            if marks:
                inventory.markers[node_id] = marks

        for statement in module.body:
            if isinstance(
                statement, ast.FunctionDef | ast.AsyncFunctionDef
            ) and statement.name.startswith("test"):
                add(
                    f"{relative}::{statement.name}",
                    module_marks | _hazard_marks(statement.decorator_list),
                )
            elif isinstance(statement, ast.ClassDef) and statement.name.startswith(
                "Test"
            ):
                class_marks = module_marks | _hazard_marks(statement.decorator_list)
                for member in statement.body:
                    if isinstance(
                        member, ast.FunctionDef | ast.AsyncFunctionDef
                    ) and member.name.startswith("test"):
                        add(
                            f"{relative}::{statement.name}::{member.name}",
                            class_marks | _hazard_marks(member.decorator_list),
                        )
    return inventory


def node_id_base(node_id: str) -> str:
    """A node id without its parameters: ``path::test_x[a-b]`` -> ``path::test_x``."""
    return node_id.split("[", 1)[0]


def traceability_problems(log: HazardLog, inventory: SuiteInventory) -> list[str]:
    """Every way the log and the suite disagree, one sentence each (none: traced)."""
    problems = []
    seen = set()
    for hazard in log.hazards:
        if not HAZARD_ID.match(hazard.id):
            problems.append(f"{hazard.id}: an id is HAZ- and three digits")
        if hazard.id in seen:
            problems.append(f"{hazard.id}: listed twice")
        seen.add(hazard.id)
        if hazard.status not in STATUSES:
            problems.append(f"{hazard.id}: status {hazard.status!r} not in {STATUSES}")
        for label, risk in (("initial", hazard.initial), ("residual", hazard.residual)):
            if risk.stated is not None and risk.stated != risk.rating:
                problems.append(
                    f"{hazard.id}: {label} risk is stated as {risk.stated} but "
                    f"{risk.severity} and {risk.likelihood} make {risk.rating}"
                )
        proved = False
        for control in hazard.controls:
            for node_id in control.tests:
                if node_id_base(node_id) in inventory.node_ids:
                    proved = True
                else:
                    problems.append(
                        f"{hazard.id}: control names a test that does not exist: "
                        f"{node_id}"
                    )
        if inventory.marked_for(hazard.id):
            proved = True
        if not proved:
            problems.append(f"{hazard.id}: no control is proved by a test")
        if hazard.residual.rating > ACCEPTABLE and not hazard.residual_justification:
            problems.append(
                f"{hazard.id}: residual risk {hazard.residual.rating} "
                f"({hazard.residual.name}) is above acceptable without a recorded "
                "justification"
            )
    for node_id, marks in sorted(inventory.markers.items()):
        for unknown in sorted(marks - seen):
            problems.append(f"{node_id}: marked with unknown hazard {unknown}")
    return problems
