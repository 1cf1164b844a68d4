"""Unresolved incidents are updated on every watch run (occurrences, last seen):
on PostgreSQL their table keeps half of each page free, so those updates stay on
the page (HOT: no index entry written, old versions pruned without a vacuum)."""

from django.db import migrations


def leave_room_for_updates(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE operations_incident SET (fillfactor = 50)")


def pack_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE operations_incident RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0013_document_count"),
    ]

    operations = [
        migrations.RunPython(leave_room_for_updates, pack_pages),
    ]
