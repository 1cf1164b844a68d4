"""The operator kill switch: pause, resume or show outbound sending."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.actors import Actor
from docflow.models import SendingOrganisation
from transmissions.engine.controls import outbound_pause, outbound_resume
from transmissions.models import OutboundHalt


class Command(BaseCommand):
    help = (
        "Pause or resume outbound sending (all, or one sending organisation), "
        "or show what is halted. Every change is audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["pause", "resume", "status"])
        parser.add_argument(
            "--organisation", help="ODS code of one sending organisation (default: all)"
        )
        parser.add_argument("--reason", default="", help="Why (required to change)")
        parser.add_argument(
            "--operator",
            default="",
            help="Who is acting (recorded in the audit trail; default: your login)",
        )

    def handle(self, *args, action, organisation, reason, operator, **options):
        scope = None
        if organisation:
            try:
                scope = SendingOrganisation.objects.get(ods_code=organisation.upper())
            except SendingOrganisation.DoesNotExist as exc:
                raise CommandError(f"No sending organisation {organisation}.") from exc
        if action == "status":
            halts = OutboundHalt.objects.filter(closed_at__isnull=True).select_related(
                "sending_organisation"
            )
            if not halts:
                self.stdout.write("Outbound is running: no open halts.")
            for halt in halts:
                since = halt.opened_at.strftime("%Y-%m-%d %H:%M:%SZ")
                self.stdout.write(
                    f"HALTED {halt}: {halt.reason} (since {since} by {halt.opened_by})"
                )
            return
        if not reason.strip():
            raise CommandError("--reason is required: it goes into the audit trail.")
        actor = Actor(
            kind="user",
            identifier=f"cli:{operator or _login()}",
            label=f"{operator or _login()} (command line)",
        )
        if action == "pause":
            halt = outbound_pause(
                reason=reason, actor=actor, sending_organisation=scope
            )
            self.stdout.write(f"Paused: {halt}")
        else:
            closed = outbound_resume(
                reason=reason, actor=actor, sending_organisation=scope
            )
            if not closed:
                self.stdout.write("Nothing to resume: no open halts for that scope.")
            for halt in closed:
                self.stdout.write(f"Resumed: {halt}")


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
