"""django-q2 entry points for the audit trail."""

from __future__ import annotations

from audit.services import audit_chain_checkpoint


def audit_chain_verify_scheduled(full: bool = False) -> bool:
    """Verify the chain from the last checkpoint and record the verdict."""
    return bool(audit_chain_checkpoint(full=full).data["ok"])
