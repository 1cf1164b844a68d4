"""The rehearsal's processes. Each node is a process group of its own (started in
a new session), with its own var directory and log, so one can be SIGKILLed whole
(a gunicorn master with its workers, a qcluster with its workers) as a machine
would die. CPU is sampled while they run, so a killed node's share is kept."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from deploy.nginx import Standalone

ROOT = Path(__file__).resolve().parents[3]


class NodeFailed(RuntimeError):
    """A node exited while starting, or never became ready."""


@dataclass
class Node:
    """One process group: the leader we started and whatever it forks."""

    name: str
    kind: str
    command: list[str]
    env: dict
    directory: Path
    port: int = 0
    popen: subprocess.Popen | None = None
    killed_at: float | None = None
    started_at: float = 0.0
    # Starts the process itself (given the log path) instead of ``command``.
    launcher: Callable[[Path], subprocess.Popen] | None = None
    _cpu: dict[int, float] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.kind}.log"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        if self.launcher is not None:
            self.popen = self.launcher(self.log_path)
            return
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 (our own argv)
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def sample(self) -> None:
        """Remember the CPU seconds of every process of the group seen so far."""
        if not self.alive():
            return
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(self.popen.pid)
            for process in [leader, *leader.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    self._cpu[process.pid] = times.user + times.system

    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def kill(self) -> None:
        """SIGKILL the whole group at once: nothing gets to clean up."""
        self.sample()
        self.killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the group (graceful), then SIGKILL to whatever is left."""
        if self.popen is None:
            return
        self.sample()
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def tail(self, chars: int = 3000) -> str:
        """The end of the node's log (about ``chars`` bytes)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - chars))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_until(self, ready, *, timeout: float = 90) -> None:
        """Wait until ``ready()`` is true; fail if the node exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise NodeFailed(f"{self.name} exited:\n{self.tail()}")
            with contextlib.suppress(OSError, httpx.HTTPError):
                if ready():
                    return
            time.sleep(0.2)
        raise NodeFailed(f"{self.name} did not become ready:\n{self.tail()}")


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def web_node(name: str, *, env: dict, directory: Path, port: int, workers: int):
    """gunicorn serving the app on ``port``, with an access log of its own."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "docflow.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
        "--access-logfile",
        str(directory / "access.log"),
        "--access-logformat",
        "%(m)s %(U)s %(s)s %(L)s",
        "--worker-tmp-dir",
        str(directory),
    ]
    return Node(name, "web", command, env, directory, port=port)


def web_ready(node: Node) -> bool:
    answer = httpx.get(f"http://127.0.0.1:{node.port}/healthz/ready", timeout=2)
    return answer.status_code == 200


def worker_node(name: str, *, env: dict, directory: Path, workers: int) -> Node:
    """A qcluster on the Redis broker, ``workers`` worker processes."""
    return Node(
        name,
        "worker",
        manage("qcluster"),
        {**env, "Q_WORKERS": str(workers), "LOG_LEVEL": "INFO"},
        directory,
    )


def worker_ready(node: Node) -> bool:
    """django-q says "Q Cluster <name> ... running." once its workers are up."""
    return "] running." in node.tail(50_000)


def worker_task_in_hand(node: Node) -> str:
    """A task the node has begun and not finished (from django-q's INFO lines:
    "processing <name> '<function>'" then "Processed '<function>' (<name>)"), or ""."""
    begun: dict[str, str] = {}
    for line in node.tail(20_000).splitlines()[1:]:
        if " processing " in line:
            words = line.split(" processing ", 1)[1].split()
            if len(words) >= 2:
                begun[words[0]] = words[1].strip("'")
        elif "Processed '" in line and line.rstrip().endswith(")"):
            begun.pop(line.rstrip()[:-1].rsplit("(", 1)[-1], None)
    return next(iter(begun.values()), "")


def worker_busy(node: Node) -> bool:
    return bool(worker_task_in_hand(node))


def simulator_node(*, env: dict, directory: Path, port: int, scenario: Path) -> Node:
    command = manage(
        "connect_simulator",
        "--port",
        str(port),
        "--scenario",
        str(scenario),
        "--state",
        str(directory / "simulator.sqlite3"),
    )
    return Node("simulator", "simulator", command, env, directory, port=port)


def simulator_ready(node: Node) -> bool:
    url = f"http://127.0.0.1:{node.port}/_sim/health"
    return httpx.get(url, timeout=1).is_success


def mllp_node(*, env: dict, directory: Path, port: int, workers: int = 4) -> Node:
    command = manage(
        "mllp_listener",
        "--port",
        str(port),
        "--certfile",
        "",
        "--workers",
        str(workers),
    )
    return Node("mllp", "mllp", command, env, directory, port=port)


def nginx_node(*, standalone: Standalone, port: int) -> Node:
    """nginx in the foreground under its own prefix, as deploy.nginx renders and
    starts it (handed to an unprivileged user when run by root)."""
    return Node(
        "nginx",
        "nginx",
        standalone.command(),
        dict(os.environ),
        standalone.prefix,
        port=port,
        launcher=lambda log_path: standalone.start(log_path=log_path),
    )


class Sampler(threading.Thread):
    """Samples every node's CPU twice a second until stopped."""

    def __init__(self, nodes: list[Node]) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.5):
            for node in self.nodes:
                node.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        for node in self.nodes:
            node.sample()
