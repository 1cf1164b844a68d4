"""Re-encrypt every stored payload under the active key (DOCFLOW_PAYLOAD_KEYS' first).

Run after putting a new key first in DOCFLOW_PAYLOAD_KEYS. Safe to interrupt and
run again. When it reports no versions left under an old key, remove that key.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from docflow.payloads.encryption import key_ring
from docflow.payloads.store import payload_key_ids_in_use, payload_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt every stored payload blob under the active (first) key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=200,
            help="Payload versions listed per database round trip (default 200).",
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="No progress bar (for logs and other non-terminals).",
        )

    def handle(self, *args, batch_size: int, no_progress: bool, **options):
        from docflow.models import PayloadVersion

        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        ring = key_ring()
        total = PayloadVersion.objects.filter(purged_at__isnull=True).count()
        with tqdm(
            total=total,
            desc=f"re-encrypting under {ring.active_key_id}",
            unit="blob",
            file=sys.stderr,
            disable=no_progress,
        ) as bar:
            report = payload_keys_rotate(batch_size=batch_size, on_progress=bar.update)
        self.stdout.write(
            f"active key {report.active_key_id}: "
            f"{report.resealed} re-encrypted, {report.current} already current, "
            f"{report.failed} failed"
        )
        old = {
            key_id: count
            for key_id, count in payload_key_ids_in_use().items()
            if key_id != ring.active_key_id
        }
        retired = sorted(set(ring.keys) - set(old) - {ring.active_key_id})
        if old:
            self.stdout.write(
                "still under old keys: "
                + ", ".join(f"{key_id} ({count})" for key_id, count in old.items())
            )
        if retired:
            self.stdout.write(
                "no stored payload uses "
                + ", ".join(retired)
                + "; it can be removed from DOCFLOW_PAYLOAD_KEYS"
            )
        if report.failed:
            for public_id in report.failed_versions[:20]:
                self.stderr.write(f"failed: payload version {public_id}")
            raise CommandError(
                f"{report.failed} payload blob(s) could not be re-encrypted"
            )
