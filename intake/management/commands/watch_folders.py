"""Watch every file-drop source system's folder until SIGINT or SIGTERM; it may run
on every node (one pass at a time anywhere, under the scanner's lease)."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from intake.file_drop import drop_folders_scan


class Command(BaseCommand):
    help = "Take documents and JSON sidecars dropped in source systems' folders."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")
        parser.add_argument(
            "--every",
            type=float,
            default=settings.DOCFLOW_FILE_DROP_POLL_SECONDS,
            help="Seconds between passes.",
        )

    def handle(self, *args, **options):
        if options["once"]:
            self._pass_once()
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("Watching drop folders", ending="\n")
        self.stdout.flush()
        while True:
            close_old_connections()
            drop_folders_scan()  # None: another node's pass holds the lease
            if stop.wait(options["every"]):
                return

    def _pass_once(self) -> None:
        """One pass, waiting for the scanner's lease for up to two lease lengths
        (a killed scanner's lease runs out within one); an error if it never
        comes, so a pass asked for is never reported as done when nothing ran."""
        wait = 2 * settings.DOCFLOW_LEASE_SECONDS
        counts = drop_folders_scan(wait=wait)
        if counts is None:
            raise CommandError(
                f"another scanner held the file-drop lease for {wait:.0f} s; "
                "nothing was read"
            )
        self.stdout.write(
            f"processed {counts['processed']}, rejected {counts['rejected']}"
        )
