"""Events written unsealed, chained by the sealer.

An audit event may now be inserted with ``sequence``, ``prev_hash`` and ``hash`` all
empty, in the business transaction and without the chain head's lock; the sealer
(``audit.sealing``) fills the three in later, under the head lock. On PostgreSQL:

- an unsealed insert takes no lock; a sealed insert must still extend the chain
  (inline mode), read from the newest *sealed* event;
- the append-only trigger lets exactly one UPDATE through: sealing, which sets the
  three chain columns of an unsealed event and changes nothing else;
- after a sealing UPDATE (statement end, so every row of a batch is in place) each
  sealed event must follow its predecessor's hash (the first one, the genesis hash)
  and lie beyond the chain head;
- the application role may UPDATE only those three columns (``audit.roles``).
"""

from django.db import migrations, models

EVENT = "audit_auditevent"

FUNCTIONS = """
CREATE OR REPLACE FUNCTION audit_event_extends_chain() RETURNS trigger AS $$
DECLARE
    newest_sequence bigint;
    newest_hash text;
BEGIN
    IF NEW.sequence IS NULL THEN
        -- Unsealed: no lock, no chain position; the sealer gives it one.
        IF NEW.prev_hash IS NOT NULL OR NEW.hash IS NOT NULL THEN
            RAISE EXCEPTION 'audit event refused: an unsealed event carries no hash'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    -- Inline writers serialise on the head row; the newest event is read under it.
    PERFORM 1 FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    SELECT sequence, hash INTO newest_sequence, newest_hash
        FROM audit_auditevent WHERE sequence IS NOT NULL
        ORDER BY sequence DESC LIMIT 1;
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

CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.sequence IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
       AND NEW.sequence IS NOT NULL AND NEW.prev_hash IS NOT NULL
       AND NEW.hash IS NOT NULL
       AND NEW.id = OLD.id
       AND NEW.occurred_at = OLD.occurred_at
       AND NEW.actor_kind = OLD.actor_kind
       AND NEW.actor_id = OLD.actor_id
       AND NEW.actor_label = OLD.actor_label
       AND NEW.action = OLD.action
       AND NEW.target_type = OLD.target_type
       AND NEW.target_id = OLD.target_id
       AND NEW.data = OLD.data THEN
        RETURN NEW;  -- sealing: the chain columns, once
    END IF;
    RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_event_sealed_extends_chain() RETURNS trigger AS $$
BEGIN
    IF NEW.sequence <= (SELECT sequence FROM audit_auditchainhead WHERE id = 1)
       OR (NEW.sequence = 1 AND NEW.prev_hash <> repeat('0', 64))
       OR (NEW.sequence > 1 AND NOT EXISTS (
            SELECT 1 FROM audit_auditevent
            WHERE sequence = NEW.sequence - 1 AND hash = NEW.prev_hash)) THEN
        RAISE EXCEPTION
            'audit event % refused: a sealed event must follow the chain', NEW.sequence
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_head_moves_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit chain head cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.id <> 1 OR NEW.sequence <> 0 OR NEW.last_hash <> repeat('0', 64)
           OR EXISTS (SELECT 1 FROM audit_auditevent WHERE sequence IS NOT NULL) THEN
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
"""


def create_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS, params=None)
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {EVENT}_append_only ON {EVENT};")
    schema_editor.execute(
        f"CREATE TRIGGER {EVENT}_append_only BEFORE UPDATE OR DELETE ON {EVENT} "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();"
    )
    schema_editor.execute(
        f"CREATE TRIGGER {EVENT}_sealed_extends_chain AFTER UPDATE ON {EVENT} "
        "FOR EACH ROW WHEN (OLD.sequence IS NULL) "
        "EXECUTE FUNCTION audit_event_sealed_extends_chain();"
    )


def drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"DROP TRIGGER IF EXISTS {EVENT}_sealed_extends_chain ON {EVENT};"
    )
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {EVENT}_append_only ON {EVENT};")
    schema_editor.execute(
        f"CREATE TRIGGER {EVENT}_append_only BEFORE UPDATE OR DELETE ON {EVENT} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();"
    )
    for function in ("audit_event_sealed_extends_chain", "audit_event_append_only"):
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}();")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_chain_guards"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "ordering": [
                    models.OrderBy(models.F("sequence"), nulls_last=True),
                    "id",
                ]
            },
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="sequence",
            field=models.BigIntegerField(null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("sequence__isnull", True)),
                fields=["id"],
                name="audit_event_unsealed",
            ),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("hash__isnull", True),
                        ("prev_hash__isnull", True),
                        ("sequence__isnull", True),
                    ),
                    models.Q(
                        ("hash__isnull", False),
                        ("prev_hash__isnull", False),
                        ("sequence__isnull", False),
                    ),
                    _connector="OR",
                ),
                name="audit_event_sealed_whole",
            ),
        ),
        migrations.RunPython(create_guards, drop_guards),
    ]
