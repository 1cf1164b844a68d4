"""A real Connect simulator on a loopback port, with its own state file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server

from transmissions.channels.connect.simulator.app import ConnectSimulator, Scenario

SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "transmissions"
    / "channels"
    / "connect"
    / "simulator"
    / "scenarios"
    / "demo.json"
)


@dataclass
class RunningSimulator:
    url: str
    app: ConnectSimulator
    state_path: Path

    def token(
        self, client_id: str = "client-RX1", secret: str = "demo-secret-RX1"
    ) -> str:
        response = httpx.post(
            f"{self.url}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=10,
        )


@pytest.fixture
def simulator(tmp_path) -> Iterator[RunningSimulator]:
    scenario = Scenario.load(SCENARIO)
    scenario.flaky_hang_seconds = 0.2
    state_path = tmp_path / "simulator.sqlite3"
    app = ConnectSimulator(scenario=scenario, state_path=state_path)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningSimulator(
            url=f"http://127.0.0.1:{server.server_port}", app=app, state_path=state_path
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
