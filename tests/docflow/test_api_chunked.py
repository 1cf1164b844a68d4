"""A chunked request body (no Content-Length) is answered 411, over a real socket.

WSGI gives the application no length for a chunked body and Django then reads it
as empty, so intake would answer "every field is required". Both servers the
project runs, Django's (the dev server and the live test server) and gunicorn,
must refuse it instead, say why, and close the connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docflow.models import Document
from tests.factories import SendingOrganisationFactory, make_api_key
from tests.samples import intake_json_body

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _exchange(host: str, port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes, read until the server closes; (status, headers, body)."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunked(body)
    return int(status_line.split()[1]), headers, body


def _dechunked(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def _post(
    *, raw_key: str, body: bytes, chunked: bool, key: str, close: bool = False
) -> bytes:
    framing = (
        b"Transfer-Encoding: chunked\r\n"
        if chunked
        else f"Content-Length: {len(body)}\r\n".encode()
    )
    payload = (
        f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if chunked else body
    )
    return (
        b"POST /api/v1/documents HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        + f"Authorization: Api-Key {raw_key}\r\n".encode()
        + f"Idempotency-Key: {key}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + framing
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + payload
    )


def _assert_length_required(status: int, headers: dict, body: bytes) -> None:
    assert status == 411, body
    assert headers["content-type"] == "application/problem+json"
    # Closed: _exchange read until the server hung up, so no unread body was
    # taken for a next request.
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == 411
    assert "Content-Length" in problem["detail"]


@pytest.fixture
def live_key(reference_data):
    _api_key, raw = make_api_key(
        sending_organisation=SendingOrganisationFactory(ods_code="RX1")
    )
    return raw


def test_chunked_body_is_411_on_django_server_and_a_sized_body_is_accepted(
    live_server, live_key
):
    host, port = live_server.thread.host, live_server.thread.port
    body = json.dumps(intake_json_body()).encode()

    _assert_length_required(
        *_exchange(
            host, port, _post(raw_key=live_key, body=body, chunked=True, key="c")
        )
    )
    assert Document.objects.count() == 0

    # The same body with its length is a document: the refusal is the framing's.
    status, _headers, answer = _exchange(
        host,
        port,
        _post(raw_key=live_key, body=body, chunked=False, key="s", close=True),
    )
    assert status == 201, answer
    assert Document.objects.count() == 1


def test_body_over_the_ceiling_is_413_on_django_server_and_closes(
    live_server, live_key, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps(intake_json_body()).encode()
    assert len(body) > 1000

    status, headers, answer = _exchange(
        live_server.thread.host,
        live_server.thread.port,
        _post(raw_key=live_key, body=body, chunked=False, key="big"),
    )

    assert status == 413, answer
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert json.loads(answer)["status"] == 413
    assert Document.objects.count() == 0


@pytest.fixture
def gunicorn_port(tmp_path):
    """gunicorn serving the project on loopback (the refusal needs no database)."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "docflow.settings",
        "DOCFLOW_VAR_DIR": str(tmp_path),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "docflow.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail((tmp_path / "gunicorn.log").read_text(errors="replace"))
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_chunked_body_is_411_under_gunicorn(gunicorn_port):
    body = json.dumps(intake_json_body()).encode()

    _assert_length_required(
        *_exchange(
            "127.0.0.1",
            gunicorn_port,
            _post(raw_key="none.none", body=body, chunked=True, key="g"),
        )
    )
