"""Purge payload blobs past retention (also scheduled; see governance.retention)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from governance.retention import FINISHED, INTERMEDIATE, payload_purge_due


class Command(BaseCommand):
    help = "Delete payload blobs past retention and mark their versions purged."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what is due without purging anything.",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar."
        )

    def handle(self, *args, dry_run: bool, no_progress: bool, **options):
        # Progress through the document ids, window by window, with the number
        # of documents purged so far.
        with tqdm(
            desc="purging", unit="id", file=sys.stderr, disable=no_progress
        ) as bar:
            purged = [0]

            def document_done(n: int) -> None:
                purged[0] += n

            def window_done(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.set_postfix(documents=purged[0])

            report = payload_purge_due(
                dry_run=dry_run, on_progress=document_done, on_window=window_done
            )
        verb = "due" if dry_run else "purged"
        self.stdout.write(
            f"{verb}: {report.purged[INTERMEDIATE]} intermediate, "
            f"{report.purged[FINISHED]} finished payload versions of "
            f"{report.documents} documents ({report.bytes_purged} bytes); "
            f"kept for open work: {report.skipped_open_work} documents"
        )
        self.stdout.write(
            f"kept (archive by IG procedure): {report.audit_events_past_retention} "
            f"audit events and {report.access_logs_past_retention} access log rows "
            "past retention"
        )
