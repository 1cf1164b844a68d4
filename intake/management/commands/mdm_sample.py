"""Print a sample MDM message (fictitious patient) to send with ``mllp_send``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from intake.mdm_samples import mdm_message


class Command(BaseCommand):
    help = "Print an MDM^T02 (or --trigger T10/T03/T11) for the demo source RX1/EPR."

    def add_arguments(self, parser):
        parser.add_argument("--unique-id", default="TRY-1", help="TXA-12")
        parser.add_argument("--trigger", default="T02")
        parser.add_argument("--practice", default="A81001", help="PD1-3 ODS code")

    def handle(self, *args, **options):
        message = mdm_message(
            trigger=options["trigger"].upper(),
            unique_id=options["unique_id"],
            practice=options["practice"],
        )
        # One segment a line: python-hl7's `mllp_send --loose` reads this form.
        self.stdout.write(message.replace("\r", "\n"), ending="")
