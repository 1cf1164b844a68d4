"""Documents by state and destination, kept by triggers on docflow_document (see
operations.counting), counted once here for the documents there already are."""

from django.db import migrations, models

from operations.counting import (
    document_counts_rebuild,
    trigger_drop_statements,
    trigger_statements,
)


def create_triggers(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in trigger_statements(schema_editor.connection.vendor):
            cursor.execute(statement)
    document_counts_rebuild(using=schema_editor.connection)


def drop_triggers(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in trigger_drop_statements(schema_editor.connection.vendor):
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0012_lease_moves_to_docflow"),
        ("docflow", "0008_history_without_patient_identifiers"),
    ]

    operations = [
        migrations.CreateModel(
            name="DocumentCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("status", models.CharField(max_length=32)),
                ("destination_id", models.BigIntegerField(default=0)),
                (
                    "destination_ods_code",
                    models.CharField(blank=True, default="", max_length=16),
                ),
                ("delta", models.BigIntegerField()),
                ("folded", models.BooleanField(default=False)),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["status", "destination_id", "destination_ods_code"],
                        name="ops_doccount_key",
                    ),
                    models.Index(
                        condition=models.Q(("folded", False)),
                        fields=["status", "destination_id", "destination_ods_code"],
                        name="ops_doccount_unfolded",
                    ),
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
