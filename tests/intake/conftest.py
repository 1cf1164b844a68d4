"""An MLLP listener in a thread of the test process, and the source systems it
knows; tests talk to it with python-hl7's own MLLP client over real sockets."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import hl7
import pytest
import trustme
from hl7.client import MLLPClient

from intake.mllp import ListenerLimits, MllpListener
from intake.models import IntakeChannel, SourceSystem
from tests.factories import SendingOrganisationFactory


@dataclass
class Listener:
    port: int
    tls_port: int
    ca: trustme.CA

    def client(self) -> MLLPClient:
        return MLLPClient("127.0.0.1", self.port)

    def tls_client(self, *, certificate: trustme.LeafCert | None) -> MLLPClient:
        """python-hl7's client on a TLS socket (optionally with a client cert)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if certificate is not None:
            certificate.configure_cert(context)
        client = MLLPClient("127.0.0.1", self.tls_port)
        client.socket = context.wrap_socket(client.socket, server_hostname="localhost")
        return client


def send(client: MLLPClient, message: str) -> hl7.Message:
    return hl7.parse(client.send_message(message).decode().strip("\x0b\x1c\r"))


def ack_code(ack: hl7.Message) -> str:
    return str(ack.extract_field("MSA", 1, 1))


def err_codes(ack: hl7.Message) -> set[tuple[str, str]]:
    """(field, code) of every ERR segment: ERR-5.2 and ERR-5.1."""
    try:
        segments = ack.segments("ERR")
    except KeyError:
        return set()
    return {
        (
            str(ack.extract_field("ERR", n, 5, 1, 2)),
            str(ack.extract_field("ERR", n, 5, 1, 1)),
        )
        for n in range(1, len(segments) + 1)
    }


@pytest.fixture
def organisation(transactional_db):
    return SendingOrganisationFactory(ods_code="RX1", name="Example Hospitals")


@pytest.fixture
def source(organisation) -> SourceSystem:
    return SourceSystem.objects.create(
        code="rx1-engine",
        name="RX1 integration engine",
        channel=IntakeChannel.MLLP,
        sending_organisation=organisation,
        sending_facility="RX1",
        sending_application="EPR",
    )


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def listener(reference_data, tls_ca, tmp_path) -> Iterator[Listener]:
    """Plain MLLP and MLLP over TLS (client certificates from the test's CA), with
    small limits so that oversized and slow messages are quick to make."""
    server_cert = tls_ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path, ca_path = (
        tmp_path / "server.pem",
        tmp_path / "server.key",
        tmp_path / "ca.pem",
    )
    server_cert.cert_chain_pems[0].write_to_path(cert_path)
    server_cert.private_key_pem.write_to_path(key_path)
    tls_ca.cert_pem.write_to_path(ca_path)
    from intake.mllp import tls_server_context

    context = tls_server_context(
        certfile=str(cert_path), keyfile=str(key_path), client_ca=str(ca_path)
    )
    listener = MllpListener(
        limits=ListenerLimits(
            max_message_bytes=2 * 1024 * 1024,
            read_timeout_seconds=1,
            idle_seconds=5,
            workers=4,
        )
    )
    loop = asyncio.new_event_loop()
    ports: dict[str, int] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            ports["plain"] = await listener.start(host="127.0.0.1", port=0)
            ports["tls"] = await listener.start(
                host="127.0.0.1", port=0, ssl_context=context
            )
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield Listener(port=ports["plain"], tls_port=ports["tls"], ca=tls_ca)
    finally:
        asyncio.run_coroutine_threadsafe(listener.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        from django.db import connections

        connections.close_all()


def raw_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)
