"""The systemd units in deploy/systemd: each long-running process has one, restarted
when it dies, hardened, reading the environment file; each runs a command that
exists; and systemd itself accepts them (``systemd-analyze verify``, on copies whose
paths point at this checkout, when systemd-analyze is installed)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
LONG_RUNNING = {
    "docflow-web.service": None,
    "docflow-worker.service": "qcluster",
    "docflow-mllp.service": "mllp_listener",
    "docflow-file-drop.service": "watch_folders",
    "docflow-audit-sealer.service": "audit_sealer",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "UMask": "0077",
    "StateDirectory": "docflow",
}


def read_unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_long_running_units_restart_are_hardened_and_read_the_environment(name):
    service = read_unit(name)["Service"]
    assert service["Restart"] in {"always", "on-failure"}
    assert service["EnvironmentFile"] == "/etc/docflow/docflow.env"
    assert service["User"] == "docflow"
    assert service["KillMode"] == "mixed"
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}"
    assert read_unit(name)["Install"]["WantedBy"] == "docflow.target"


@pytest.mark.parametrize("name", sorted([*LONG_RUNNING, "docflow-migrate.service"]))
def test_units_run_commands_that_exist(name):
    text = (UNITS / name).read_text()
    starts = [
        line.split("=", 1)[1]
        for line in text.splitlines()
        if line.startswith("ExecStart=")
    ]
    assert starts
    commands = get_commands()
    for start in starts:
        argv = shlex.split(start)
        if argv[1:2] == ["manage.py"]:
            assert argv[2] in commands, argv
        else:
            assert argv[0].endswith("/gunicorn")
            assert argv[1:] == ["-c", "/opt/docflow/deploy/gunicorn.conf.py"]
    expected = LONG_RUNNING.get(name)
    if expected:
        assert any(expected in start for start in starts)


def test_every_process_run_dev_starts_has_a_unit_or_is_a_simulator():
    """scripts/run-dev starts every process docflow runs: each management command it
    runs is served by a unit (runserver by the web unit), or is a simulator of a
    national service (development and the rehearsal only); the rest (the MESH
    sandbox, the demo practice) are not docflow."""
    text = (ROOT / "scripts" / "run-dev").read_text()
    block = text[text.index("PROCESSES=(") : text.index(")", text.index("PROCESSES=("))]
    run = set(re.findall(r"manage\.py (\w+)", block))
    served = {command for command in LONG_RUNNING.values() if command} | {"runserver"}
    simulators = {command for command in run if command.endswith("_simulator")}
    assert run - served - simulators == set()
    # The audit sealer has nothing to do on run-dev's SQLite (events are chained as
    # they are written there); every other unit's command runs in development too.
    assert served - {"audit_sealer"} <= run
    assert "audit_sealer" in served


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)
def test_systemd_accepts_the_units(tmp_path):
    venv_bin = Path(sys.executable).parent
    for unit in UNITS.iterdir():
        text = unit.read_text()
        text = text.replace("/opt/docflow/.venv/bin", str(venv_bin))
        text = text.replace("/opt/docflow", str(ROOT))
        text = text.replace(
            "/etc/docflow/docflow.env", str(ROOT / "deploy/docflow.env.example")
        )
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *sorted(str(p) for p in tmp_path.iterdir()),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    problems = [
        line for line in (result.stdout + result.stderr).splitlines() if line.strip()
    ]
    assert result.returncode == 0 and not problems, "\n".join(problems)
