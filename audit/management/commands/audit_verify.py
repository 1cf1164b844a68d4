from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit hash chain: prints OK or the first broken link."

    def handle(self, *args, **options) -> None:
        verdict = audit_chain_verify()
        if verdict.ok:
            self.stdout.write(f"OK: {verdict.checked} audit events verified")
            return
        raise CommandError(
            f"BROKEN at sequence {verdict.broken_sequence}: {verdict.problem} "
            f"({verdict.checked} events verified before it)"
        )
