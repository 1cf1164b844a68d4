"""The environment-file template lists every variable the settings read, and the
production settings it describes pass ``manage.py check --deploy``.

What the settings read is found two ways: their source is parsed for literal names
(``os.environ.get("X")``, ``env_int("X", ...)``, ``read_secret("X")``), and the
module is imported in a child process whose ``os.environ`` records every look-up
(names read indirectly, such as dj-database-url's DATABASE_URL and the ``_FILE``
form of each secret), once with development defaults and once with the template's
production values.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.environment import TEMPLATE, read_environment_file
from tests.deploy.environments import production_environment

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "docflow" / "settings.py"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
READERS = {"get", "getenv", "env_int", "env_bool", "read_secret", "_int"}

# Imports a settings module with an os.environ that records every name looked up,
# then prints them as JSON.
RECORDER = """
import importlib, json, os, sys
read = set()
class RecordingEnviron(dict):
    def get(self, key, default=None):
        read.add(key)
        return super().get(key, default)
    def __getitem__(self, key):
        read.add(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        read.add(key)
        return super().__contains__(key)
os.environ = RecordingEnviron(os.environ)
importlib.import_module(sys.argv[1])
json.dump(sorted(read), sys.stdout)
"""


def literal_reads(path: Path) -> set[str]:
    """Names passed as a literal first argument to an environment reader."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if (
            name in READERS
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and first.value.isupper()
        ):
            names.add(first.value)
    return names


def recorded_reads(module: str, env: dict[str, str], *, cwd: Path = ROOT) -> set[str]:
    """Every environment name ``import module`` looks up, in a child process."""
    result = subprocess.run(
        [sys.executable, "-c", RECORDER, module],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(cwd)}
        | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout))


def test_the_template_lists_every_variable_the_settings_read(tmp_path):
    listed = read_environment_file().listed
    read = literal_reads(SETTINGS) | literal_reads(GUNICORN_CONF)
    read |= recorded_reads(
        "docflow.settings",
        {"DJANGO_DEBUG": "1", "DOCFLOW_VAR_DIR": str(tmp_path / "dev")},
    )
    read |= recorded_reads("docflow.settings", production_environment(tmp_path))
    missing = sorted(read - listed)
    assert not missing, (
        f"{TEMPLATE.name} does not list {', '.join(missing)}: add each, with a "
        "comment, set (NAME=value) or at its default (# NAME=default)"
    )
    # The recorder saw the secrets' file forms and the database URL, which no
    # literal in settings.py names.
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY_FILE", "DOCFLOW_PAYLOAD_KEYS"} <= read


def test_a_variable_read_but_not_listed_is_found(tmp_path):
    """The check above would see a new setting: a module reading a name the
    template does not list is caught by both the parser and the recorder."""
    module = tmp_path / "extra_settings.py"
    module.write_text(
        "import os\nVALUE = os.environ.get('DOCFLOW_NOT_IN_THE_TEMPLATE', '')\n"
    )
    listed = read_environment_file().listed
    assert "DOCFLOW_NOT_IN_THE_TEMPLATE" in literal_reads(module) - listed
    recorded = recorded_reads("extra_settings", {}, cwd=tmp_path)
    assert "DOCFLOW_NOT_IN_THE_TEMPLATE" in recorded - listed


def test_every_listed_variable_is_named_once():
    pattern = re.compile(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=")
    names = [
        match.group(1)
        for line in TEMPLATE.read_text(encoding="utf-8").splitlines()
        if (match := pattern.match(line))
    ]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"listed more than once: {repeated}"


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")} | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def test_production_settings_from_the_template_pass_check_deploy(tmp_path):
    result = check_deploy(production_environment(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "warning"),
    [("DOCFLOW_SSL_REDIRECT", "0", "security.W008"), ("DJANGO_DEBUG", "1", "W018")],
)
def test_check_deploy_fails_when_a_protection_is_turned_off(
    tmp_path, name, value, warning
):
    """The check above can fail: the same values with one protection off do not pass."""
    env = production_environment(tmp_path) | {name: value}
    result = check_deploy(env)
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr
