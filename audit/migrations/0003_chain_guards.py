"""The database refuses what the chain cannot explain.

Everywhere: an event's sequence is positive. On PostgreSQL also:

- an inserted event must extend the chain: its sequence is one past the newest
  event's and its previous hash is that event's hash (the first event follows the
  genesis hash);
- the chain head moves only forward, and only to an event that exists with the
  hash the head claims; it is never deleted, and a second one is never inserted;
- TRUNCATE of any audit table is refused (statement level: the row-level triggers
  do not see a TRUNCATE). Only the owner's maintenance flush, which sets
  ``docflow.audit_truncate_allowed`` in its own transaction, gets past it; the
  application role has no TRUNCATE privilege at all (see ``audit.roles``).
"""

from django.db import migrations, models

EVENT = "audit_auditevent"
TABLES = ("audit_auditevent", "audit_accesslog", "audit_auditchainhead")

FUNCTIONS = """
CREATE OR REPLACE FUNCTION audit_event_extends_chain() RETURNS trigger AS $$
DECLARE
    newest_sequence bigint;
    newest_hash text;
BEGIN
    -- Writers serialise on the head row; the newest event is read under it.
    PERFORM 1 FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    SELECT sequence, hash INTO newest_sequence, newest_hash
        FROM audit_auditevent ORDER BY sequence DESC LIMIT 1;
    IF newest_sequence IS NULL THEN
        newest_sequence := 0;
        newest_hash := repeat('0', 64);
    END IF;
    IF NEW.sequence <> newest_sequence + 1 OR NEW.prev_hash <> newest_hash THEN
        RAISE EXCEPTION
            'audit event % refused: the chain continues at % after hash %',
            NEW.sequence, newest_sequence + 1, newest_hash
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_head_moves_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit chain head cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- A second head is refused by the primary key (an IntegrityError that
        -- get_or_create expects when two writers race to create the first one).
        IF NEW.id <> 1 OR NEW.sequence <> 0 OR NEW.last_hash <> repeat('0', 64)
           OR EXISTS (SELECT 1 FROM audit_auditevent) THEN
            RAISE EXCEPTION 'audit chain head can only be created empty'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.id = OLD.id AND NEW.sequence = OLD.sequence
       AND NEW.last_hash = OLD.last_hash THEN
        RETURN NEW;
    END IF;
    IF NEW.id <> OLD.id OR NEW.sequence <= OLD.sequence OR NOT EXISTS (
        SELECT 1 FROM audit_auditevent
        WHERE sequence = NEW.sequence AND hash = NEW.last_hash
    ) THEN
        RAISE EXCEPTION
            'audit chain head can only move forward to an event: % refused',
            NEW.sequence
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('docflow.audit_truncate_allowed', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit table % is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def create_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS, params=None)
    schema_editor.execute(
        f"CREATE TRIGGER {EVENT}_extends_chain BEFORE INSERT ON {EVENT} "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_extends_chain();"
    )
    schema_editor.execute(
        "CREATE TRIGGER audit_auditchainhead_forward_only "
        "BEFORE INSERT OR UPDATE OR DELETE ON audit_auditchainhead "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_moves_forward();"
    )
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();"
        )


def drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};")
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS audit_auditchainhead_forward_only "
        "ON audit_auditchainhead;"
    )
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {EVENT}_extends_chain ON {EVENT};")
    for function in (
        "audit_refuse_truncate",
        "audit_head_moves_forward",
        "audit_event_extends_chain",
    ):
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}();")


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_chain_head_and_append_only_triggers")]

    operations = [
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(sequence__gt=0), name="audit_event_sequence_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="auditchainhead",
            constraint=models.CheckConstraint(
                condition=models.Q(sequence__gte=0),
                name="audit_chain_head_sequence_not_negative",
            ),
        ),
        migrations.RunPython(create_guards, drop_guards),
    ]
