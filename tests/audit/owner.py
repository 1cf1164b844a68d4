"""The attacker who owns the tables: every audit guard switched off, then on again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection

AUDIT_TABLES = ("audit_auditevent", "audit_accesslog", "audit_auditchainhead")


@contextlib.contextmanager
def audit_guards_disabled() -> Iterator[None]:
    """As the table owner can: ALTER TABLE ... DISABLE TRIGGER USER, and back."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            yield
        finally:
            if postgres:
                for table in AUDIT_TABLES:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
