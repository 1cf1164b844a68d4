"""Local state files are private: a real ``manage.py migrate`` in a fresh state
directory (under the usual umask 022) leaves the directory 0700 and the SQLite
database, its WAL and shared-memory files and the development secrets 0600; payload
blobs are 0600 in 0700 directories; files left looser by older runs are tightened."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from docflow.payloads.store import payload_blob_write
from docflow.state_files import private_directory_ensure, sqlite_database_prepare

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a child process whose umask is the common 022 (so nothing
    here passes because the test runner's umask happened to be strict)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def fresh_state(tmp_path) -> tuple[dict[str, str], Path]:
    """The environment of a first run: SQLite under a state directory (and a parent)
    that do not exist yet, development secrets generated there."""
    var_dir = tmp_path / "deployment" / "var"
    removed = {
        "DATABASE_URL",
        "DOCFLOW_DEV_SECRETS_FILE",
        "DOCFLOW_PAYLOAD_DIR",
        "DJANGO_SECRET_KEY",
        "DOCFLOW_PAYLOAD_KEYS",
    }
    env = {k: v for k, v in os.environ.items() if k not in removed}
    env.update({"DJANGO_DEBUG": "1", "DOCFLOW_VAR_DIR": str(var_dir)})
    return env, var_dir


def test_a_first_migrate_makes_the_state_directory_0700_and_its_files_0600(
    fresh_state,
):
    env, var_dir = fresh_state

    manage(env, "migrate", "--verbosity", "0")

    assert mode(var_dir) == 0o700
    assert mode(var_dir.parent) == 0o700  # a missing parent is made private too
    assert mode(var_dir / "docflow.sqlite3") == 0o600
    assert mode(var_dir / "dev-secrets.json") == 0o600
    # While a process has the database open, SQLite's WAL and shared memory exist:
    # they are made with the database file's mode.
    script = (
        "import json, os, stat; from pathlib import Path; "
        "from django.db import connection; "
        "from docflow.models import Document; Document.objects.count(); "
        f"var = Path({str(var_dir)!r}); "
        "print(json.dumps({p.name: stat.S_IMODE(os.stat(p).st_mode) "
        "for p in sorted(var.iterdir())}))"
    )
    seen = json.loads(
        manage(env, "shell", "-c", script).stdout.strip().splitlines()[-1]
    )
    assert seen == {
        "dev-secrets.json": 0o600,
        "docflow.sqlite3": 0o600,
        "docflow.sqlite3-shm": 0o600,
        "docflow.sqlite3-wal": 0o600,
    }


def test_a_database_and_wal_left_0644_by_an_older_run_are_tightened(tmp_path):
    database = tmp_path / "docflow.sqlite3"
    for path in (database, Path(f"{database}-wal")):
        path.write_bytes(b"")
        path.chmod(0o644)

    sqlite_database_prepare(database)

    assert mode(database) == 0o600
    assert mode(Path(f"{database}-wal")) == 0o600
    assert not Path(f"{database}-shm").exists()  # nothing made up


def test_a_new_database_file_is_created_empty_and_private(tmp_path):
    database = tmp_path / "state" / "new.sqlite3"

    sqlite_database_prepare(database)

    assert database.read_bytes() == b""
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700


def test_directories_are_made_0700_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        made = private_directory_ensure(tmp_path / "a" / "b")
    finally:
        os.umask(previous)

    assert mode(made) == 0o700
    assert mode(made.parent) == 0o700


def test_an_existing_state_directory_of_ours_is_tightened(tmp_path):
    loose = tmp_path / "var"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)

    private_directory_ensure(loose)

    assert mode(loose) == 0o700


def test_a_shared_sticky_directory_is_never_tightened(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)

    private_directory_ensure(shared)

    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777


def test_payload_blobs_are_0600_in_0700_directories(filesystem_payload_store):
    previous = os.umask(0o022)
    try:
        blob = payload_blob_write(b"%PDF-1.7 letter")
    finally:
        os.umask(previous)

    path = filesystem_payload_store / blob.storage_name
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(filesystem_payload_store) == 0o700
