"""Worker processes for the MLLP listener: each message is handled by a
single-threaded process of its own (one message at a time, one database
connection each), fed by the listener's one asyncio loop.

Why processes rather than threads: every accepted document holds the preparation
wake-up row and the audit chain head from its wake-up to its commit, so documents
commit one after another across the whole service. A thread holding those locks
that must then wait for the interpreter lock (behind other threads parsing and
vetting 130 KB messages) between its round trips holds every other sender up; a
single-threaded process goes on as soon as its database answers. One loop feeding
one pool also spreads the messages of every connection over every worker, where
processes sharing a port (SO_REUSEPORT) get the connections hashed unevenly.

The listener keeps a pipe to each worker. A worker takes ``(text, peer)`` and
answers the ACK text only once :func:`intake.services.mdm_receive` has returned
(after its commit), or ``None`` when handling failed. It exits when its pipe
closes, so a listener killed with SIGKILL leaves no worker behind beyond the
message in hand. A worker that dies is replaced; the message it held gets no ACK
and the sender resends (idempotency makes that safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the worker only once Django is set up
    from intake.services import Peer

logger = logging.getLogger(__name__)


class WorkerLost(Exception):
    """The worker process died, or its handling failed: no ACK for this message."""


def worker_main(connection: Connection) -> None:
    """A worker process: answer every message that comes down the pipe, in turn,
    until the listener closes it. SIGINT and SIGTERM are left to the listener, which
    stops taking messages and then closes the pipes (a signal to the whole process
    group must not cut a message off halfway)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import django

    django.setup()
    from django.db import close_old_connections, connections

    from intake.services import mdm_receive

    try:
        while True:
            try:
                text, peer = connection.recv()
            except (EOFError, OSError):
                return
            close_old_connections()
            try:
                answer = mdm_receive(text=text, peer=peer)
            except Exception:
                logger.exception("mllp: message not handled; no ACK sent")
                answer = None
            finally:
                close_old_connections()
            try:
                connection.send(answer)
            except OSError:
                return
    finally:
        connections.close_all()


class WorkerProcess:
    """One worker process and the listener's end of its pipe."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        ours, theirs = context.Pipe(duplex=True)
        self.process = context.Process(
            target=worker_main, args=(theirs,), name="mllp-worker", daemon=False
        )
        self.process.start()
        theirs.close()
        self.connection = ours

    def call(self, text: str, peer: Peer) -> str | None:
        """Send one message and wait for its answer (runs on a listener thread)."""
        self.connection.send((text, peer))
        return self.connection.recv()

    def close(self, timeout: float = 30) -> None:
        """Close the pipe (the worker exits after the message in hand); kill it if
        it has not gone within ``timeout`` seconds."""
        with contextlib.suppress(OSError):
            self.connection.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class WorkerPool:
    """``size`` worker processes; a message goes to the first one free."""

    def __init__(self, size: int) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._size = size
        # Threads only wait on pipes: one per worker, so no call waits for a thread.
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="mllp")
        self._idle: asyncio.Queue[WorkerProcess] | None = None
        self._workers: set[WorkerProcess] = set()
        self._stopping = False

    def start(self) -> None:
        """Start the workers (each sets Django up in the background)."""
        self._idle = asyncio.Queue()
        for _ in range(self._size):
            self._idle.put_nowait(self._spawn())

    def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(self._context)
        self._workers.add(worker)
        return worker

    async def handle(self, text: str, peer: Peer) -> str:
        """The ACK for one message, from the first free worker."""
        assert self._idle is not None, "start() the pool first"
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._threads, worker.call, text, peer)
        # The worker goes back only when its answer is in, even if this connection
        # is cancelled meanwhile: a pipe carries one message at a time.
        future.add_done_callback(lambda done: self._returned(worker, done))
        try:
            answer = await asyncio.shield(future)
        except (EOFError, OSError) as lost:
            raise WorkerLost("the worker process died") from lost
        if answer is None:
            raise WorkerLost("the worker could not handle the message")
        return answer

    def _returned(self, worker: WorkerProcess, done: Future) -> None:
        assert self._idle is not None
        if done.cancelled() or isinstance(done.exception(), EOFError | OSError):
            self._workers.discard(worker)
            worker.close(timeout=5)
            if self._stopping:
                return
            logger.warning("mllp: a worker process died; starting another")
            worker = self._spawn()
        self._idle.put_nowait(worker)

    def stop(self) -> None:
        """Wait for the messages in hand, then close every worker."""
        self._stopping = True
        self._threads.shutdown(wait=True)
        for worker in list(self._workers):
            worker.close()
        self._workers.clear()
