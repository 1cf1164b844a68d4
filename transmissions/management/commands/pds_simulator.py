"""Run the PDS simulator as its own HTTP process."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from werkzeug.serving import run_simple

from transmissions.pds.simulator import DEMO_PATIENTS, PdsSimulator


class Command(BaseCommand):
    help = (
        "Serve the PDS simulator (GET /Patient/{id} of the published PDS FHIR API, "
        "transmissions/pds/pds-api.yaml) over HTTP."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8200)
        parser.add_argument("--patients", default=str(DEMO_PATIENTS))
        parser.add_argument("--hang-seconds", type=float, default=None)

    def handle(self, *args, **options) -> None:
        app = PdsSimulator.load(options["patients"])
        if options["hang_seconds"] is not None:
            app.hang_seconds = options["hang_seconds"]
        self.stdout.write(
            f"PDS simulator on http://{options['host']}:{options['port']} "
            f"({len(app.patients)} demo patients)"
        )
        run_simple(
            options["host"], options["port"], app, threaded=True, use_reloader=False
        )
