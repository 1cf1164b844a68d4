"""Run the MLLP listener until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from intake.mllp import ListenerLimits, MllpListener, tls_server_context


class Command(BaseCommand):
    help = "Accept HL7 v2 MDM messages over MLLP (plain on loopback, TLS for others)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.DOCFLOW_MLLP_HOST)
        parser.add_argument("--port", type=int, default=settings.DOCFLOW_MLLP_PORT)
        parser.add_argument("--tls-host", default=settings.DOCFLOW_MLLP_TLS_HOST)
        parser.add_argument(
            "--tls-port", type=int, default=settings.DOCFLOW_MLLP_TLS_PORT
        )
        parser.add_argument("--certfile", default=settings.DOCFLOW_MLLP_TLS_CERT)
        parser.add_argument("--keyfile", default=settings.DOCFLOW_MLLP_TLS_KEY)
        parser.add_argument("--client-ca", default=settings.DOCFLOW_MLLP_TLS_CLIENT_CA)
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.DOCFLOW_MLLP_PROCESSES,
            help="Worker processes handling messages (0: threads in this process).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.DOCFLOW_MLLP_WORKERS,
            help="Worker threads, when --processes is 0.",
        )
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="Share the ports with other listener processes (SO_REUSEPORT).",
        )

    def handle(self, *args, **options):
        asyncio.run(self._run(options))

    async def _run(self, options) -> None:
        listener = MllpListener(
            limits=ListenerLimits(
                max_message_bytes=settings.DOCFLOW_MLLP_MAX_MESSAGE_BYTES,
                read_timeout_seconds=settings.DOCFLOW_MLLP_READ_TIMEOUT_SECONDS,
                idle_seconds=settings.DOCFLOW_MLLP_IDLE_SECONDS,
                workers=options["workers"],
                processes=options["processes"],
            )
        )
        reuse = options["reuse_port"]
        port = await listener.start(
            host=options["host"], port=options["port"], reuse_port=reuse
        )
        self.stdout.write(f"MLLP listening on {options['host']}:{port}", ending="\n")
        if options["certfile"]:
            context = tls_server_context(
                certfile=options["certfile"],
                keyfile=options["keyfile"],
                client_ca=options["client_ca"],
            )
            tls_port = await listener.start(
                host=options["tls_host"],
                port=options["tls_port"],
                ssl_context=context,
                reuse_port=reuse,
            )
            self.stdout.write(
                f"MLLP over TLS listening on {options['tls_host']}:{tls_port}",
                ending="\n",
            )
        self.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await listener.stop()
