"""Watch every file-drop source system's folder until SIGINT or SIGTERM; it may run
on every node (one pass at a time anywhere, under the scanner's lease)."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
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
        stop = threading.Event()
        if not options["once"]:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            self.stdout.write("Watching drop folders", ending="\n")
            self.stdout.flush()
        while True:
            close_old_connections()
            counts = drop_folders_scan()
            if counts is None:
                counts = {"processed": 0, "rejected": 0}  # another node's pass
            if options["once"]:
                self.stdout.write(
                    f"processed {counts['processed']}, rejected {counts['rejected']}"
                )
                return
            if stop.wait(options["every"]):
                return
