"""The MLLP listener: asyncio connections, python-hl7's MLLP framing, and each
message handed to :func:`intake.services.mdm_receive` in a worker process
(:mod:`intake.mllp_workers`), or on a worker thread when no processes are asked for
(the tests' listener in the test process, whose database it shares).

A connection carries any number of messages, answered in order. A connection is
closed (and only that one) when its framing is broken, a message passes the size
limit, or a message takes longer than the read timeout to arrive (idle or slow-loris
senders). A message whose handling fails unexpectedly gets no ACK and its
connection is closed: the sender resends, and idempotency makes that safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import close_old_connections
from hl7.mllp import InvalidBlockError
from hl7.mllp.streams import (
    CARRIAGE_RETURN,
    END_BLOCK,
    START_BLOCK,
    MLLPStreamReader,
)

from intake.mllp_workers import WorkerPool
from intake.services import Peer, mdm_receive

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerLimits:
    """How much one connection may take from the listener."""

    max_message_bytes: int
    # Once a message has begun, the whole of it must arrive within this time.
    read_timeout_seconds: float
    # A connection with no message begun for this long is closed.
    idle_seconds: float
    # Worker threads, used when ``processes`` is 0.
    workers: int
    # Worker processes, each handling one message at a time.
    processes: int = 0


def tls_server_context(
    *, certfile: str, keyfile: str, client_ca: str = ""
) -> ssl.SSLContext:
    """TLS 1.2 or newer; client certificates are asked for (and checked against
    ``client_ca``) when a CA is given, and each source system may require one."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=certfile, keyfile=keyfile or None)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class MllpListener:
    """Plain MLLP for loopback senders, MLLP over TLS for everyone else."""

    def __init__(
        self,
        *,
        limits: ListenerLimits,
        handle: Callable[..., str] | None = None,
    ) -> None:
        self.limits = limits
        if limits.processes and handle is not None:
            raise ValueError("worker processes always call mdm_receive")
        self._handle = handle or (lambda text, peer: mdm_receive(text=text, peer=peer))
        self._pool = WorkerPool(limits.processes) if limits.processes else None
        self._pool_started = False
        self._executor = (
            None
            if self._pool
            else ThreadPoolExecutor(
                max_workers=limits.workers, thread_name_prefix="mllp"
            )
        )
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task] = set()

    async def start(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> int:
        """Listen on one address; returns the port bound (0 picks a free one).
        ``reuse_port`` lets several listener processes share the port."""
        loop = asyncio.get_running_loop()
        limit = self.limits.max_message_bytes
        if self._pool is not None and not self._pool_started:
            self._pool.start()
            self._pool_started = True

        def factory():
            reader = MLLPStreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(
                reader, self._connected_cb(reader), loop=loop
            )

        server = await loop.create_server(
            factory,
            host,
            port,
            ssl=ssl_context,
            reuse_port=reuse_port or None,
            ssl_handshake_timeout=self.limits.read_timeout_seconds
            if ssl_context
            else None,
        )
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    def _connected_cb(self, reader: MLLPStreamReader):
        def connected(_reader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._serve(reader, writer))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

        return connected

    async def _serve(
        self, reader: MLLPStreamReader, writer: asyncio.StreamWriter
    ) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        peername = writer.get_extra_info("peername") or ("", 0)
        if ssl_object is None and not _is_loopback(str(peername[0])):
            logger.warning("mllp: plain connection from a non-loopback peer closed")
            await self._close(writer)
            return
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        peer = Peer(
            tls=ssl_object is not None,
            certificate_sha256=(
                hashlib.sha256(certificate).hexdigest() if certificate else ""
            ),
        )
        try:
            while True:
                try:
                    block = await self._read_message(reader)
                except asyncio.IncompleteReadError as eof:
                    if eof.partial.strip():
                        logger.warning("mllp: connection ended inside a message")
                    return
                except TimeoutError:
                    logger.warning("mllp: connection idle or too slow; closed")
                    return
                except InvalidBlockError:
                    logger.warning("mllp: framing error; connection closed")
                    return
                except (ValueError, asyncio.LimitOverrunError):
                    logger.warning("mllp: message over the size limit; closed")
                    return
                text = block.decode("utf-8", errors="replace")
                try:
                    answer = await self._answer(text, peer)
                except Exception:
                    logger.exception("mllp: message not handled; no ACK sent")
                    return
                writer.write(
                    START_BLOCK + answer.encode("utf-8") + END_BLOCK + CARRIAGE_RETURN
                )
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            await self._close(writer)

    async def _read_message(self, reader: MLLPStreamReader) -> bytes:
        """One framed message: its start within the idle time, the rest within the
        read timeout (a sender trickling bytes is cut off)."""
        start = await asyncio.wait_for(reader.readexactly(1), self.limits.idle_seconds)
        if start != START_BLOCK:
            raise InvalidBlockError("Block does not begin with <VT>")
        block = await asyncio.wait_for(
            reader.readuntil(END_BLOCK + CARRIAGE_RETURN),
            self.limits.read_timeout_seconds,
        )
        if START_BLOCK in block:
            raise InvalidBlockError("A block begins inside another")
        return block[:-2]

    async def _answer(self, text: str, peer: Peer) -> str:
        """The ACK, once the message's effect is committed."""
        if self._pool is not None:
            return await self._pool.handle(text, peer)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._handle_in_thread, text, peer
        )

    def _handle_in_thread(self, text: str, peer: Peer) -> str:
        close_old_connections()
        try:
            return self._handle(text, peer)
        finally:
            close_old_connections()

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)

    async def stop(self) -> None:
        """Stop listening, let messages in hand finish, then close connections."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._pool is not None:
            self._pool.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
