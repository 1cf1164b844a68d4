"""Run the Docman Connect simulator as its own HTTP process."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from werkzeug.serving import run_simple

from transmissions.channels.connect.simulator.app import ConnectSimulator, Scenario

DEFAULT_SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "channels"
    / "connect"
    / "simulator"
    / "scenarios"
    / "demo.json"
)


class Command(BaseCommand):
    help = "Serve the Docman Connect simulator (shared/connect-api.yaml) over HTTP."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
        parser.add_argument(
            "--state", default=str(Path(settings.VAR_DIR) / "connect-simulator.sqlite3")
        )
        parser.add_argument("--time-multiplier", type=float, default=None)

    def handle(self, *args, **options) -> None:
        scenario = Scenario.load(options["scenario"])
        if options["time_multiplier"] is not None:
            from dataclasses import replace

            scenario.timings = replace(
                scenario.timings, multiplier=options["time_multiplier"]
            )
        Path(options["state"]).parent.mkdir(parents=True, exist_ok=True)
        app = ConnectSimulator(scenario=scenario, state_path=options["state"])
        self.stdout.write(
            f"Connect simulator on http://{options['host']}:{options['port']} "
            f"({len(scenario.organisations)} organisations, "
            f"time x{scenario.timings.multiplier:g}, state {options['state']})"
        )
        run_simple(
            options["host"], options["port"], app, threaded=True, use_reloader=False
        )
