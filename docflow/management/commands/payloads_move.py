"""Move payload blobs between the database and the file system.

``manage.py payloads_move --to database`` (or ``--to filesystem``) copies each blob,
verifies the copy, switches to it and removes the old one, in batches of
``--batch-size``. Readers look in both stores, so documents keep flowing during a
move; safe to interrupt and run again. Set ``DOCFLOW_PAYLOAD_STORE`` to the target
first (and restart), so no new blob is written where the move just emptied.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from docflow.payloads.blobstores import STORE_NAMES
from docflow.payloads.moving import payload_blobs_move, payload_blobs_to_move


class Command(BaseCommand):
    help = "Move every encrypted payload blob into the database or the file system."

    def add_arguments(self, parser):
        parser.add_argument(
            "--to", required=True, choices=STORE_NAMES, help="The store to move into."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=100,
            help="Blobs copied per transaction (default 100).",
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Progress as plain lines on stderr instead of a bar.",
        )

    def handle(self, *args, to: str, batch_size: int, no_progress: bool, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if to != settings.DOCFLOW_PAYLOAD_STORE:
            self.stderr.write(
                f"note: DOCFLOW_PAYLOAD_STORE is {settings.DOCFLOW_PAYLOAD_STORE!r}: "
                f"new blobs still go there, not to {to!r}"
            )
        total = payload_blobs_to_move(to=to)
        done = 0

        def lines(count: int) -> None:
            nonlocal done
            done += count
            self.stderr.write(f"moved to {to}: {done}/{total} blobs looked at")

        with tqdm(
            total=total,
            desc=f"moving to {to}",
            unit="blob",
            file=sys.stderr,
            disable=no_progress,
        ) as bar:
            report = payload_blobs_move(
                to=to,
                batch_size=batch_size,
                on_progress=lines if no_progress else bar.update,
            )
        self.stdout.write(
            f"{report.moved} moved from {report.source} to {report.target}, "
            f"{report.changed} rewritten meanwhile (run again), {report.failed} failed"
        )
        if report.failed:
            for name in report.failed_names[:20]:
                self.stderr.write(f"failed: payload blob {name}")
            raise CommandError(
                f"{report.failed} payload blob(s) could not be moved; "
                "they stay where they were"
            )
