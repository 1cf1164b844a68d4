from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify
from audit.signing import CheckpointSignatureError, checkpoints_trusted


class Command(BaseCommand):
    help = (
        "Verify the whole audit hash chain, the access log, every checkpoint recorded "
        "in the chain and every signed external checkpoint: prints OK or the first "
        "sequence that disagrees."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--checkpoints",
            action="append",
            type=Path,
            metavar="PATH",
            help=(
                "a directory of checkpoint files, or a file (syslog capture); may be "
                "repeated. Default: AUDIT_CHECKPOINT_DIR"
            ),
        )

    def handle(self, *args, checkpoints=None, **options) -> None:
        try:
            external = checkpoints_trusted(checkpoints)
        except CheckpointSignatureError as exc:
            raise CommandError(f"BROKEN: {exc}") from exc
        verdict = audit_chain_verify(external=external)
        if verdict.ok:
            newest = external[-1].sequence if external else 0
            self.stdout.write(
                f"OK: {verdict.checked} audit events verified "
                f"against {len(external)} external checkpoints "
                f"(newest at sequence {newest})"
            )
            return
        where = (
            f"at sequence {verdict.broken_sequence}"
            if verdict.broken_sequence is not None
            else "in the access log"
        )
        raise CommandError(
            f"BROKEN {where}: {verdict.problem} "
            f"({verdict.checked} events verified before it)"
        )
