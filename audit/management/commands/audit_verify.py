from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.sealing import audit_seal_lag, seal_max_lag_seconds
from audit.selectors import audit_chain_verify
from audit.signing import CheckpointSignatureError, checkpoints_trusted


class Command(BaseCommand):
    help = (
        "Verify the whole audit hash chain, the access log, every checkpoint recorded "
        "in the chain and every signed external checkpoint: prints OK or the first "
        "sequence that disagrees; fails too when an event has waited unsealed for "
        "longer than AUDIT_SEAL_MAX_LAG_SECONDS."
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
        lag = audit_seal_lag()
        if verdict.ok:
            bound = seal_max_lag_seconds()
            if lag.pending and lag.oldest_age_seconds > bound:
                raise CommandError(
                    f"UNSEALED: {lag.pending} audit events wait to be chained, the "
                    f"oldest for {lag.oldest_age_seconds:.0f} s (more than {bound:.0f}"
                    f" s): is the sealer (manage.py audit_sealer) running? "
                    f"({verdict.checked} sealed events verified)"
                )
            newest = external[-1].sequence if external else 0
            waiting = (
                f"; {lag.pending} more wait to be sealed "
                f"(oldest {lag.oldest_age_seconds:.1f} s)"
                if lag.pending
                else ""
            )
            self.stdout.write(
                f"OK: {verdict.checked} audit events verified "
                f"against {len(external)} external checkpoints "
                f"(newest at sequence {newest}){waiting}"
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
