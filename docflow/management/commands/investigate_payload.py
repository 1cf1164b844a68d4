"""Write a failed document's payload to a file for investigation (logged, reasoned)."""

from __future__ import annotations

import os
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from docflow.payloads.investigation import (
    InvestigationRefused,
    document_payload_investigate,
)


class Command(BaseCommand):
    help = (
        "Give an authorised user the payload of a failed, held or rejected document, "
        "with a reason; the access is recorded in the access log."
    )

    def add_arguments(self, parser):
        parser.add_argument("document", type=uuid.UUID, help="The document's id.")
        parser.add_argument("--user", required=True, help="Who is investigating.")
        parser.add_argument("--reason", required=True, help="Why (recorded).")
        parser.add_argument(
            "--output", required=True, help="A new file to write the bytes to."
        )
        parser.add_argument(
            "--payload-version",
            type=uuid.UUID,
            default=None,
            help="A particular payload version (default: the newest).",
        )

    def handle(self, *args, document, user, reason, output, payload_version, **opts):
        account = get_user_model().objects.filter(username=user).first()
        if os.path.exists(output):
            raise CommandError(f"{output} exists; give a new file name")
        try:
            payload = document_payload_investigate(
                user=account,
                document_id=document,
                reason=reason,
                payload_version_id=payload_version,
            )
        except InvestigationRefused as refused:
            raise CommandError(f"refused ({refused.code}): {refused.message}") from None
        # Owner-only, and never over an existing file.
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload.content)
        self.stdout.write(
            f"wrote payload version {payload.payload_version_id} ({payload.stage}, "
            f"{payload.media_type}, sha256 {payload.sha256}) to {output}; "
            f"access log entry {payload.access_log_id}"
        )
