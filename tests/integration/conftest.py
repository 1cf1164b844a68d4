"""Real processes for integration tests: a Connect simulator over HTTP and django-q2
clusters (``manage.py qcluster``) working on the pytest PostgreSQL database.

Every process runs in its own process group and is killed, group and all, when the
test ends. The test process plays the scheduler: ``Engine.tick`` queues the periodic
tasks (sweep, stuck-sending check, tracking) when none is queued, so a test waits
seconds where django-q2's minute schedules would take minutes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from django.db import connection
from django_q.models import OrmQ
from django_q.tasks import async_task

from docflow.models import DestinationProfile, Organisation, OrganisationStatus
from tests.factories import SendingOrganisationFactory

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# One destination per behaviour (endpoint types as Connect's directory has them).
SCENARIO_ORGANISATIONS = [
    ("A81001", "docman10", "accept"),
    ("A81003", "emis_mesh", "delivered_final"),
    ("A81004", "tpp_mesh", "delivered_final"),
    ("A81005", "docman10", "reject:REJ01"),
    ("A81006", "docman10", "inactive"),
    ("A81007", "docman10", "not_receiving"),
    ("A81008", "docman10", "system_error"),
    ("A81009", "docman10", "on_hold"),
    ("A81010", "docman10", "flaky:0.5"),
    # Answers after 3 s: longer than the read timeout of ENGINE_ENV.
    ("A81011", "docman10", "slow:3"),
    ("A81012", "docman10", "never_ack"),
    ("A81013", "docman7", "size_limit:200000"),
    # Answers after 2 s: POSTs stay in flight long enough to kill a cluster.
    ("A81014", "docman10", "slow:2"),
]

# What every cluster gets: short timers so a lifecycle plays out in seconds.
ENGINE_ENV = {
    "DOCFLOW_CONNECT_CONNECT_TIMEOUT": "2",
    "DOCFLOW_CONNECT_READ_TIMEOUT": "1",
    "DOCFLOW_CONNECT_WRITE_TIMEOUT": "2",
    "DOCFLOW_SEND_RETRY_BASE_SECONDS": "1",
    "DOCFLOW_SEND_RETRY_MAX_SECONDS": "2",
    "DOCFLOW_POLL_FIRST_SECONDS": "1",
    "DOCFLOW_SENDING_TIMEOUT_SECONDS": "5",
    "DOCFLOW_DISPATCH_GRACE_SECONDS": "2",
    "DOCFLOW_CIRCUIT_COOLDOWN_SECONDS": "1",
    "DOCFLOW_TRACK_ROUND_SECONDS": "0.2",
    # A killed cluster's tracker lease runs out in seconds.
    "DOCFLOW_LEASE_SECONDS": "3",
    "DOCFLOW_TRACK_STANDBY_SECONDS": "0",
}
PERIODIC_TASKS = (
    "transmissions.tasks.dispatch_due",
    "transmissions.tasks.reconcile_sending",
    "transmissions.tasks.track",
)
# Tracking is queued as short runs so a killed cluster never holds it for long.
TRACK_SECONDS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """One child process in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], *, env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group (the cluster's workers die with their sentinel)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    every: float = 0.25,
    between: Callable[[], Any] | None = None,
    message: str = "condition",
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy, or fail at the deadline
    (processes are asynchronous: this is the only waiting the tests do)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}{extra}")
        if between is not None:
            between()
        time.sleep(every)


@dataclass
class Simulator:
    url: str
    process: Process

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_sim/stats", timeout=5).json()


@pytest.fixture
def connect_simulator(tmp_path) -> Iterator[Simulator]:
    """``manage.py connect_simulator`` on a free port, with its own scenario and
    state file; lifecycle steps take milliseconds (time multiplier 1e6)."""
    scenario = {
        "time_multiplier": 1_000_000,
        "flaky_hang_seconds": 2,
        "seed": 11,
        "clients": [
            {
                "client_id": "client-RX1",
                "client_secret": "demo-secret-RX1",
                "sending_ods_code": "RX1",
            }
        ],
        "organisations": [
            {
                "ods_code": ods,
                "name": f"Practice {ods}",
                "endpoint_type": endpoint,
                "behaviour": behaviour,
            }
            for ods, endpoint, behaviour in SCENARIO_ORGANISATIONS
        ],
    }
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(scenario))
    port = free_port()
    process = Process(
        "simulator",
        [
            "manage.py",
            "connect_simulator",
            "--port",
            str(port),
            "--scenario",
            str(scenario_path),
            "--state",
            str(tmp_path / "simulator.sqlite3"),
        ],
        env={**os.environ, "DJANGO_DEBUG": "1"},
        log_path=tmp_path / "simulator.log",
    )
    simulator = Simulator(url=f"http://127.0.0.1:{port}", process=process)
    try:

        def healthy() -> bool:
            if not process.alive:
                pytest.fail(f"simulator exited:\n{process.log_tail()}")
            try:
                return httpx.get(f"{simulator.url}/_sim/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, every=0.1, message="the simulator")
        yield simulator
    finally:
        process.kill()


def database_url() -> str:
    """The pytest database (test_<name>), as the clusters must see it."""
    settings = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("integration tests need PostgreSQL")
    user = quote(settings["USER"] or "postgres", safe="")
    password = (
        f":{quote(settings['PASSWORD'], safe='')}" if settings["PASSWORD"] else ""
    )
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def destination_profiles_seed() -> None:
    """The profiles migration 0002 seeds; a transactional test's flush removes them."""
    migration = importlib.import_module(
        "docflow.migrations.0002_destination_profiles_and_roles"
    )
    for profile in migration.PROFILES:
        DestinationProfile.objects.update_or_create(
            endpoint_type=profile["endpoint_type"], defaults=profile
        )


@dataclass
class Engine:
    """What a test drives: the sending organisation, the simulator and clusters."""

    organisation: Any
    simulator: Simulator
    env: dict[str, str]
    tmp_path: Path
    clusters: list[Process] = field(default_factory=list)

    def start_cluster(self, *, workers: int = 2, **env: str) -> Process:
        """Start ``manage.py qcluster`` with ``workers`` workers (and extra env)."""
        number = len(self.clusters) + 1
        process = Process(
            f"qcluster-{number}",
            ["manage.py", "qcluster"],
            env={**self.env, "Q_WORKERS": str(workers), **env},
            log_path=self.tmp_path / f"qcluster-{number}.log",
        )
        self.clusters.append(process)
        return process

    def tick(self, tasks: tuple[str, ...] = PERIODIC_TASKS) -> None:
        """Queue each periodic task that is not queued or running already (a queued
        row stays in OrmQ until its task has finished)."""
        for cluster in self.clusters:
            if cluster.alive is False and cluster.popen.returncode not in (
                None,
                -signal.SIGKILL,
            ):
                pytest.fail(f"{cluster.name} exited:\n{cluster.log_tail()}")
        queued = {row.func() for row in OrmQ.objects.all()}
        for func in tasks:
            if func not in queued:
                args = (TRACK_SECONDS,) if func.endswith(".track") else ()
                async_task(func, *args)

    def wait_for(
        self,
        condition: Callable[[], T],
        *,
        timeout: float,
        message: str,
        tasks: tuple[str, ...] = PERIODIC_TASKS,
    ):
        """Poll ``condition`` while playing the scheduler (for ``tasks`` only)."""
        return wait_for(
            condition,
            timeout=timeout,
            between=lambda: self.tick(tasks),
            every=0.3,
            message=message,
            details=self.logs,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.log_tail()}"
            for p in [self.simulator.process, *self.clusters]
        )


@pytest.fixture
def engine(
    transactional_db, connect_simulator, _payloads_in_tmp, tmp_path
) -> Iterator[Engine]:
    """A directory that (wrongly) believes every scenario destination is active, the
    destination profiles, sending organisation RX1, and the environment clusters get:
    this database, the payload directory intake writes to, Connect's URL and secret."""
    destination_profiles_seed()
    for ods, endpoint, _ in SCENARIO_ORGANISATIONS:
        Organisation.objects.update_or_create(
            ods_code=ods,
            defaults={
                "name": f"Practice {ods}",
                "endpoint_type": endpoint,
                "status": OrganisationStatus.ACTIVE,
            },
        )
    organisation = SendingOrganisationFactory(
        ods_code="RX1", name="Example Hospitals NHS Trust"
    )
    env = {
        **os.environ,
        **ENGINE_ENV,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database_url(),
        "DOCFLOW_PAYLOAD_DIR": str(_payloads_in_tmp),
        "DOCFLOW_CONNECT_BASE_URL": connect_simulator.url,
        "CONNECT_SECRET_RX1": "demo-secret-RX1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    engine = Engine(
        organisation=organisation,
        simulator=connect_simulator,
        env=env,
        tmp_path=tmp_path,
    )
    try:
        yield engine
    finally:
        for cluster in engine.clusters:
            cluster.kill()
