"""The application role on PostgreSQL: SELECT and INSERT on the audit tables, and
nothing that could rewrite, empty or unguard them."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from django.db import connection

from audit.roles import app_role_grant
from audit.services import audit_record

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_role(transactional_db, reference_data):
    """A login role granted what ``migrate`` grants the app; dropped afterwards."""
    role = f"docflow_audit_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" LOGIN')
    app_role_grant(connection, role)
    audit_record(action="document.submitted", target_type="document", target_id="1")
    settings_dict = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        dbname=settings_dict["NAME"],
        user=role,
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
    )
    with psycopg.connect(conninfo, autocommit=True) as app:
        yield app
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')


REFUSED = [
    "UPDATE audit_auditevent SET action = 'document.cancel'",
    "DELETE FROM audit_auditevent",
    "TRUNCATE audit_auditevent",
    "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
    "UPDATE audit_accesslog SET reason = 'routine'",
    "DELETE FROM audit_accesslog",
    "TRUNCATE audit_accesslog",
    "ALTER TABLE audit_accesslog DISABLE TRIGGER USER",
    "DELETE FROM audit_auditchainhead",
    "TRUNCATE audit_auditchainhead",
    "ALTER TABLE audit_auditchainhead DISABLE TRIGGER USER",
    "ALTER TABLE audit_auditevent DROP CONSTRAINT audit_event_sequence_positive",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_application_role_is_refused(app_role, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_role.execute(statement)


def test_the_application_role_reads_and_appends_but_cannot_move_the_head_back(
    app_role,
):
    [(count,)] = app_role.execute("SELECT count(*) FROM audit_auditevent").fetchall()
    assert count == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only move forward"):
        app_role.execute(
            "UPDATE audit_auditchainhead SET sequence = 0, last_hash = repeat('0', 64)"
        )
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        app_role.execute(
            "INSERT INTO audit_auditevent (sequence, occurred_at, actor_kind, "
            "actor_id, actor_label, action, target_type, target_id, data, "
            "prev_hash, hash) VALUES (5, now(), 'user', 'admin', 'admin', "
            "'document.cancel', 'document', '1', '{}', repeat('0', 64), "
            "repeat('a', 64))"
        )


def test_the_application_role_seals_an_event_but_changes_nothing_else_of_it(app_role):
    [(head_hash,)] = app_role.execute(
        "SELECT last_hash FROM audit_auditchainhead WHERE id = 1"
    ).fetchall()
    [(event_id,)] = app_role.execute(
        "INSERT INTO audit_auditevent (occurred_at, actor_kind, actor_id, "
        "actor_label, action, target_type, target_id, data) VALUES (now(), 'user', "
        "'admin', 'admin', 'document.sent', 'document', '2', '{}') RETURNING id"
    ).fetchall()
    # Its other columns are not the role's to change, sealed or not.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_role.execute(
            "UPDATE audit_auditevent SET action = 'document.cancel' WHERE id = %s",
            (event_id,),
        )
    app_role.execute(
        "UPDATE audit_auditevent SET sequence = 2, prev_hash = %s, hash = %s "
        "WHERE id = %s",
        (head_hash, "b" * 64, event_id),
    )
    # Once sealed, not even the chain columns move again.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        app_role.execute(
            "UPDATE audit_auditevent SET hash = %s WHERE id = %s", ("c" * 64, event_id)
        )
