"""Export everything held about one NHS number (a subject access request).

The NHS number is read from standard input, never from the command line, where it
would stay in shell history and process listings. The export is access-logged and
audited as the named IG officer, like the admin's download.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from governance.ig import ig_subject_access_export


class Command(BaseCommand):
    help = (
        "Write a subject access export (JSON) for the NHS number given on standard "
        "input, as an IG officer, with a reason."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="the IG officer's username")
        parser.add_argument("--reason", required=True, help="why (recorded)")
        parser.add_argument(
            "--output-dir",
            default=".",
            help="folder for the file (its name says when, never who)",
        )

    def handle(self, *args, user: str, reason: str, output_dir: str, **options):
        try:
            officer = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError("No such user.") from None
        number = sys.stdin.readline().strip()
        try:
            export = ig_subject_access_export(
                user=officer, nhs_number=number, reason=reason
            )
        except ValidationError as error:
            raise CommandError(error.messages[0]) from None
        except (PermissionError, ValueError) as error:
            raise CommandError(str(error)) from None
        target = Path(output_dir) / export.filename
        target.write_bytes(export.content)
        target.chmod(0o600)
        counts = ", ".join(f"{n} {what}" for what, n in export.counts.items())
        self.stdout.write(f"Wrote {target} ({counts})")
