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


def test_a_shell_reads_the_template_as_the_units_do():
    """Operators load the file into a shell for manage.py (docs: Deployment): every
    value a shell gets is the value parsed here (quotes stripped, nothing expanded)."""
    result = subprocess.run(
        ["bash", "-c", f"set -a; . {TEMPLATE}; set +a; env -0"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    shell = dict(item.split("=", 1) for item in result.stdout.split("\0") if item)
    values = read_environment_file().values
    assert {name: shell.get(name) for name in values} == values


def test_rotation_secrets_are_read_from_their_files(tmp_path):
    """The secrets the rotation procedures name come from NAME_FILE: the old secret
    keys (a file of them, comma-separated), the IG hash key and the metrics token."""
    env = production_environment(tmp_path)
    fallbacks = tmp_path / "secrets" / "fallbacks"
    fallbacks.write_text("old-key-one,old-key-two\n")
    env["DJANGO_SECRET_KEY_FALLBACKS_FILE"] = str(fallbacks)
    script = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.SECRET_KEY_FALLBACKS, "
        "settings.DOCFLOW_IG_SUBJECT_KEY, settings.DOCFLOW_METRICS_TOKEN]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
        | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys, subject_key, metrics_token = json.loads(result.stdout)
    assert keys == ["old-key-one", "old-key-two"]
    assert subject_key == Path(env["DOCFLOW_IG_SUBJECT_KEY_FILE"]).read_text().strip()
    assert metrics_token == Path(env["DOCFLOW_METRICS_TOKEN_FILE"]).read_text().strip()
    assert subject_key and metrics_token
