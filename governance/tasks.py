"""django-q2 entry points for governance: thin, each calls one service."""

from __future__ import annotations

from docflow.leases import singleton
from governance.retention import payload_purge_due


@singleton("governance.purge_payloads")
def purge_payloads() -> str:
    """Purge the payloads whose retention ran out (scheduled hourly)."""
    return f"purged {dict(payload_purge_due().purged)}"
