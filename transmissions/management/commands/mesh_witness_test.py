"""Rehearse (or perform) the MESH onboarding witness test against one mailbox."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from transmissions.channels.mesh.conformance.witness import STEPS, mesh_witness_run
from transmissions.models import MeshMailbox


class Command(BaseCommand):
    help = (
        "Run the sequence NHS England's MESH onboarding witnesses (handshake, "
        "endpoint lookup, send, chunked send, check inbox, download, acknowledge, "
        "tracking) against a configured mailbox and print each step's result. "
        "Exits non-zero unless every step passes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--mailbox", help="Mailbox id (default: the only active mailbox)"
        )
        parser.add_argument(
            "--recipient", default="", help="Send to this mailbox (default: itself)"
        )
        parser.add_argument(
            "--workflow", default="", help="Workflow id (default: the mailbox's)"
        )
        parser.add_argument(
            "--lookup-ods",
            default="",
            help="ODS code for the endpoint lookup (default: the sending trust's)",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=1024 * 1024,
            help="Chunk size in bytes for the chunked send (it sends 2.5 chunks)",
        )
        parser.add_argument("--wait", type=float, default=30.0)

    def handle(self, *args, **options):
        active = MeshMailbox.objects.filter(is_active=True)
        if options["mailbox"]:
            mailbox = active.filter(mailbox_id__iexact=options["mailbox"]).first()
        else:
            mailbox = active.first() if active.count() == 1 else None
        if mailbox is None:
            raise CommandError("Name one active MESH mailbox with --mailbox.")
        steps = mesh_witness_run(
            mailbox=mailbox,
            recipient=options["recipient"],
            workflow_id=options["workflow"],
            lookup_ods_code=options["lookup_ods"],
            chunk_size=options["chunk_size"],
            wait_seconds=options["wait"],
        )
        for step in steps:
            mark = "PASS" if step.passed else "FAIL"
            self.stdout.write(f"{mark}  {step.name}: {step.detail}")
        ran = {step.name for step in steps}
        for name in STEPS:
            if name not in ran:
                self.stdout.write(f"SKIP  {name}: an earlier step failed")
        if not all(step.passed for step in steps) or ran != set(STEPS):
            raise CommandError("The witness test did not pass every step.")
        self.stdout.write(f"All {len(STEPS)} steps passed for {mailbox.mailbox_id}.")
