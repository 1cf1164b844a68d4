"""Rehearse one failure against the Connect simulator and report what happened."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from docflow.models import SendingOrganisation
from operations.rehearsals.runner import rehearsal_run
from operations.rehearsals.scenarios import SCENARIOS
from operations.rehearsals.simulator import RehearsalRefused


class Command(BaseCommand):
    help = (
        "Drive the Connect simulator into one failure, run the pipeline, report "
        "whether the expected incidents, work items and halts happened, and restore "
        "normal behaviour. Simulator on loopback only."
    )

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=sorted(SCENARIOS))
        parser.add_argument(
            "--sending-organisation",
            default="RX1",
            help="ODS code of the sending organisation whose credentials are used",
        )
        parser.add_argument(
            "--timeout", type=float, default=60, help="seconds to wait for statuses"
        )

    def handle(self, *args, scenario, sending_organisation, timeout, **options):
        try:
            organisation = SendingOrganisation.objects.get(
                ods_code=sending_organisation
            )
        except SendingOrganisation.DoesNotExist as exc:
            raise CommandError(
                f"No sending organisation {sending_organisation}."
            ) from exc
        try:
            passed, report = rehearsal_run(
                scenario,
                organisation=organisation,
                simulator_url=settings.DOCFLOW_CONNECT_BASE_URL,
                timeout=timeout,
            )
        except RehearsalRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("\n".join(report))
        if not passed:
            raise CommandError(f"Rehearsal {scenario} did not go as expected.")
