"""The audit app's django-q2 schedules: name -> (function, minutes between runs).
Collected with every app's by ``manage.py setup_schedules``."""

SCHEDULES = {
    # The audit chain, verified from its last checkpoint; the verdict is chained too,
    # and a passing one is signed and published outside the database.
    "docflow: verify the audit chain": ("audit.tasks.audit_chain_verify_scheduled", 5),
    # A backstop for ``manage.py audit_sealer`` (which seals within seconds): what
    # waits unsealed is chained at least once a minute.
    "docflow: seal the audit chain": ("audit.tasks.audit_seal_scheduled", 1),
}
