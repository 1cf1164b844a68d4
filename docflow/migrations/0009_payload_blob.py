"""Encrypted payload blobs in a table of their own (DOCFLOW_PAYLOAD_STORE "database").

On PostgreSQL the ciphertext column's storage is EXTERNAL: out of line, never
compressed (AES-GCM output does not compress), and read in slices cheaply."""

import django.utils.timezone
from django.db import migrations, models


def ciphertext_storage_external(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("docflow", "PayloadBlob")._meta.db_table
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"ALTER TABLE {quote(table)} ALTER COLUMN {quote('ciphertext')} "
        "SET STORAGE EXTERNAL"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("docflow", "0008_history_without_patient_identifiers"),
    ]

    operations = [
        migrations.CreateModel(
            name="PayloadBlob",
            fields=[
                (
                    "name",
                    models.CharField(max_length=255, primary_key=True, serialize=False),
                ),
                ("ciphertext", models.BinaryField()),
                (
                    "stored_at",
                    models.DateTimeField(default=django.utils.timezone.now),
                ),
            ],
            options={
                "verbose_name": "payload blob",
            },
        ),
        migrations.RunPython(
            ciphertext_storage_external, migrations.RunPython.noop, elidable=False
        ),
    ]
