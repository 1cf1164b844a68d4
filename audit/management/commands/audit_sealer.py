from django.core.management.base import BaseCommand

from audit.sealing import audit_seal_pending, audit_sealer_run


class Command(BaseCommand):
    help = (
        "Chain the audit events written unsealed, in the order they commit: once "
        "(--once) or in a loop every --interval seconds. One sealer works at a time "
        "(the chain head's row lock); a second one beside it seals nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="seal what waits, exit")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between rounds"
        )
        parser.add_argument(
            "--stop-after", type=float, default=None, help="exit after these seconds"
        )

    def handle(self, *args, once=False, interval=1.0, stop_after=None, **options):
        if once:
            sealed = audit_seal_pending(wait=True)
        else:
            sealed = audit_sealer_run(interval=interval, stop_after=stop_after)
        self.stdout.write(f"sealed {sealed} audit events")
