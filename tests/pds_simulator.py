"""A real PDS simulator on a loopback port, for any test that looks patients up.

Registered as a plugin in tests/conftest.py: the ``pds_simulator`` fixture serves
the demo patients (``transmissions/pds/demo-patients.json``) over real HTTP and
points ``DOCFLOW_PDS_BASE_URL`` at it; its ``timeout`` case hangs just past the
client's timeout, which the fixture shortens.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from transmissions.pds.simulator import DEMO_PATIENTS, PdsSimulator

CLIENT_TIMEOUT_SECONDS = 0.5


@dataclass
class RunningPdsSimulator:
    url: str
    app: PdsSimulator

    def number(self, case: str) -> str:
        """The first demo patient's NHS number for ``case``."""
        for nhs_number, patient in self.app.patients.items():
            if patient.get("case") == case:
                return nhs_number
        raise KeyError(case)


def demo_patients() -> dict[str, dict]:
    """The demo patients file's patients, by NHS number."""
    data = json.loads(DEMO_PATIENTS.read_text(encoding="utf-8"))
    return {patient["nhs_number"]: patient for patient in data["patients"]}


@pytest.fixture
def pds_simulator(settings) -> Iterator[RunningPdsSimulator]:
    app = PdsSimulator.load()
    app.hang_seconds = CLIENT_TIMEOUT_SECONDS + 0.5
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    settings.DOCFLOW_PDS_BASE_URL = url
    settings.DOCFLOW_PDS_TIMEOUT = CLIENT_TIMEOUT_SECONDS
    try:
        yield RunningPdsSimulator(url=url, app=app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def pds_not_running(settings) -> str:
    """``DOCFLOW_PDS_BASE_URL`` pointing at a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.DOCFLOW_PDS_BASE_URL = f"http://127.0.0.1:{port}"
    return settings.DOCFLOW_PDS_BASE_URL
