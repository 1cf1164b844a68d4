"""Several nodes on one database: child processes (real OS processes, each its own
Django) that share the test database with the test, on SQLite and PostgreSQL.

On PostgreSQL the children open the pytest database itself. On SQLite the test
database lives in the test process's memory, which no other process can open: it
is copied (schema, migrations' data, and whatever the test wrote before) into a
file that the children then share, and the test reads what they did from that
file (``shared_rows``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same twice in a run (TEST_PORT_BASE: the
    first of a range of 1000 to take it from; else the system's choice)."""
    base = int(os.environ.get("TEST_PORT_BASE", "0"))
    for port in range(base, base + 1000) if base else [0] * 20:
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = sock.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no free port")


@dataclass
class SharedDatabase:
    """The database children are given (``url``), and how the test reads it."""

    url: str
    sqlite_file: Path | None

    def rows(self, sql: str, params=()) -> list[tuple]:
        """Run a query on the shared database (parameters as ``%s``)."""
        if self.sqlite_file is None:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        with contextlib.closing(sqlite3.connect(self.sqlite_file, timeout=30)) as db:
            cursor = db.execute(sql.replace("%s", "?"), params)
            rows = cursor.fetchall()
            db.commit()
            return rows


@pytest.fixture
def shared_database(transactional_db, tmp_path) -> SharedDatabase:
    """The test database, open to child processes. Set up what they need before
    asking for it (on SQLite, later writes of the test process stay its own)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        user = quote(settings_dict["USER"] or "")
        password = settings_dict.get("PASSWORD") or ""
        auth = f"{user}:{quote(password)}@" if password else f"{user}@"
        url = (
            f"postgres://{auth}{settings_dict['HOST'] or '127.0.0.1'}:"
            f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
        )
        return SharedDatabase(url=url, sqlite_file=None)
    target = tmp_path / "shared.sqlite3"
    connection.ensure_connection()
    with contextlib.closing(sqlite3.connect(target)) as copy:
        connection.connection.backup(copy)
    return SharedDatabase(url=f"sqlite:///{target}", sqlite_file=target)


def node_environment(database: SharedDatabase, var_dir: Path, **extra: str) -> dict:
    """A child's environment: the shared database, its own state directory, the
    database broker and the local cache (nothing shared but the database)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DOCFLOW_CACHE_REDIS_URL", "DATABASE_URL"}
    }
    env.update(
        {
            "DJANGO_DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "docflow.settings",
            "DATABASE_URL": database.url,
            "DOCFLOW_VAR_DIR": str(var_dir),
            "PYTHONPATH": str(ROOT),
            **extra,
        }
    )
    var_dir.mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class Node:
    """One child process in its own process group, its output in a log file."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def start_node(tmp_path) -> Iterator:
    """Start child processes (``start_node(name, argv, env)``); every one still
    running is killed, process group and all, when the test ends."""
    nodes: list[Node] = []

    def start(name: str, argv: list[str], env: dict) -> Node:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, *argv],
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(process=process, log=log)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.kill()


def wait_until(predicate, *, timeout: float, what: str, nodes=(), every=0.1):
    """Poll ``predicate`` until it is true (returns its value); fails the test with
    the nodes' output after ``timeout`` seconds or when a node died by itself."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for node in nodes:
            if node.process.poll() is not None:
                pytest.fail(f"a node exited while waiting for {what}:\n{node.output()}")
        if time.monotonic() > deadline:
            logs = "\n---\n".join(node.output() for node in nodes)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(every)
