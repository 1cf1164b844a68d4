"""NHS England's mesh-sandbox as a subprocess on a free loopback port, over TLS with
a certificate from a throwaway CA (trustme), checking every token (AUTH_MODE=full)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import trustme

SHARED_KEY = "TestKey"
PASSWORD = "password"
# The sandbox's own test mailboxes: we send as X26ABC1; X26ABC2 is the GP practice
# (ODS X26) that receives TEST_WORKFLOW and sends TEST_WORKFLOW_ACK back.
OUR_MAILBOX = "X26ABC1"
GP_MAILBOX = "X26ABC2"
GP_ODS_CODE = "X26"
WORKFLOW = "TEST_WORKFLOW"


@dataclass
class RunningSandbox:
    url: str
    ca_path: Path
    process: subprocess.Popen

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(
            method, f"{self.url}{path}", verify=str(self.ca_path), timeout=10, **kwargs
        )
        response.raise_for_status()
        return response

    def reset(self) -> None:
        self.admin("DELETE", "/messageexchange/admin/reset")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox(workdir: Path, *, timeout: float = 30.0) -> RunningSandbox:
    """Start the sandbox and wait until it answers over TLS."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = workdir / "ca.pem"
    cert_path = workdir / "server.pem"
    key_path = workdir / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    server_cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    server_cert.private_key_pem.write_to_path(str(key_path))
    port = free_port()
    env = {
        **os.environ,
        "AUTH_MODE": "full",
        "STORE_MODE": "memory",
        "SHARED_KEY": SHARED_KEY,
        "MAILBOXES_DATA_DIR": str(workdir / "store"),
    }
    log = (workdir / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "mesh_sandbox.api:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--ssl-certfile",
            str(cert_path),
            "--ssl-keyfile",
            str(key_path),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sandbox = RunningSandbox(
        url=f"https://127.0.0.1:{port}", ca_path=ca_path, process=process
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                "mesh-sandbox exited: " + (workdir / "sandbox.log").read_text()
            )
        try:
            sandbox.admin("GET", "/health")
            return sandbox
        except requests.RequestException:
            if time.monotonic() > deadline:
                process.terminate()
                raise
            time.sleep(0.1)


def stop_sandbox(sandbox: RunningSandbox) -> None:
    sandbox.process.terminate()
    try:
        sandbox.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        sandbox.process.wait(timeout=10)


class AnswerLosingProxy:
    """A TCP relay in front of the sandbox that loses MESH's answer to an upload.

    Bytes flow both ways (so TLS is set up end to end with the sandbox) until the
    client has sent more than ``after_bytes``: from then on the client's bytes
    still reach the sandbox, but nothing comes back. The upload lands; its answer
    never arrives, and the client's read times out.
    """

    def __init__(self, target_port: int, *, after_bytes: int) -> None:
        self.target_port = target_port
        self.after_bytes = after_bytes
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            sent = [0]
            for source, sink, counts in (
                (client, upstream, True),
                (upstream, client, False),
            ):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, counts, sent), daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _pump(self, source, sink, counts: bool, sent: list[int]) -> None:
        try:
            while data := source.recv(65536):
                if counts:
                    sent[0] += len(data)
                elif sent[0] > self.after_bytes:
                    continue  # the answer is lost on the way back
                sink.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
