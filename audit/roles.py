"""Two PostgreSQL roles: the owner that migrates, and the application role.

Migrations run as the owner (``DATABASE_MIGRATION_URL``); the application connects
with ``DATABASE_URL`` as a role that owns nothing, so it can neither ALTER a table
nor disable a trigger. On the audit tables it may only SELECT and INSERT, seal an
event (UPDATE of its three chain columns only, which the append-only trigger lets
through once, while they are empty) and move the chain head (which the database lets
go only forward); everywhere else it reads and writes rows. ``manage.py migrate``
grants this after every run (see ``audit.apps``), so tables added later are covered
too.
"""

from __future__ import annotations

from psycopg import sql

APPEND_ONLY_TABLES = ("audit_auditevent", "audit_accesslog")
HEAD_TABLE = "audit_auditchainhead"
EVENT_TABLE = "audit_auditevent"
CHAIN_COLUMNS = ("sequence", "prev_hash", "hash")


def app_role_grant_statements(role: str) -> list[sql.Composed]:
    """The GRANT and REVOKE statements that give ``role`` exactly what the app needs."""
    who = sql.Identifier(role)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who),
        sql.SQL(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
        ).format(who),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            who
        ),
    ]
    for table in APPEND_ONLY_TABLES:
        statements.append(
            sql.SQL(
                "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}"
            ).format(sql.Identifier(table), who)
        )
    # Column privileges outlive a table-level REVOKE: the sealer's three, granted
    # after it, are the only UPDATE left on the events.
    statements.append(
        sql.SQL("GRANT UPDATE ({}) ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(column) for column in CHAIN_COLUMNS),
            sql.Identifier(EVENT_TABLE),
            who,
        )
    )
    statements.append(
        sql.SQL("REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(
            sql.Identifier(HEAD_TABLE), who
        )
    )
    return statements


def app_role_grant(connection, role: str) -> None:
    """Apply :func:`app_role_grant_statements` on ``connection`` (the owner's)."""
    with connection.cursor() as cursor:
        for statement in app_role_grant_statements(role):
            cursor.execute(statement)
