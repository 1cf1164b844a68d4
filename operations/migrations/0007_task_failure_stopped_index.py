"""An index for the failing-task watch on django-q2's own table.

The watch reads failed tasks by when they stopped, every minute (operations
services task_failures); django-q2 indexes only successful rows. A partial index
on ``stopped`` over failed rows keeps that read an index range scan however many
rows the table holds. Plain SQL, valid on SQLite and PostgreSQL, because the table
belongs to another app's models.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0006_incident_kind_changes_feed"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX IF NOT EXISTS docflow_task_failure_stopped "
                'ON django_q_task (stopped) WHERE NOT "success"'
            ),
            reverse_sql="DROP INDEX IF EXISTS docflow_task_failure_stopped",
        ),
    ]
