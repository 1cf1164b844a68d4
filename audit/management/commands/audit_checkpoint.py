from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_chain_checkpoint


class Command(BaseCommand):
    help = (
        "Verify the audit chain from the last passing checkpoint (or, with --full, "
        "from the start) and record the verdict for the IG admin."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--full", action="store_true", help="re-verify every event from the start"
        )

    def handle(self, *args, full: bool = False, **options) -> None:
        data = audit_chain_checkpoint(full=full).data
        if data["ok"]:
            self.stdout.write(
                f"OK: {data['checked']} audit events verified "
                f"({data['mode']}, through sequence {data['through_sequence']})"
            )
            return
        raise CommandError(
            f"BROKEN at sequence {data['broken_sequence']}: {data['problem']} "
            f"({data['checked']} events verified before it)"
        )
