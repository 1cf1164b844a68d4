"""django-q2 entry points for the audit trail."""

from __future__ import annotations

from audit.sealing import audit_seal_pending
from audit.services import audit_chain_checkpoint


def audit_chain_verify_scheduled(full: bool = False) -> bool:
    """Verify the chain from the last checkpoint and record the verdict."""
    return bool(audit_chain_checkpoint(full=full).data["ok"])


def audit_seal_scheduled() -> int:
    """Seal what waits (a backstop beside ``manage.py audit_sealer``, which seals
    within seconds; when it runs, this finds the head locked or nothing to do)."""
    return audit_seal_pending()
