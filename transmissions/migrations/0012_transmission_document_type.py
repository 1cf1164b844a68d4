"""Transmissions carry their document's type (copied from the document for the
transmissions there already are), in the recent-status index the surge watch reads."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_document_types(apps, schema_editor):
    Document = apps.get_model("docflow", "Document")
    Transmission = apps.get_model("transmissions", "Transmission")
    document_type = Document.objects.filter(pk=OuterRef("document_id")).values(
        "document_type"
    )
    Transmission.objects.using(schema_editor.connection.alias).update(
        document_type=Subquery(document_type[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("docflow", "0011_held_by_reason_index"),
        ("transmissions", "0011_quarantined_answer_resolve_permission"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="transmission",
            name="transmission_recent_status",
        ),
        migrations.AddField(
            model_name="transmission",
            name="document_type",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.RunPython(copy_document_types, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="transmission",
            index=models.Index(
                fields=["last_status_at"],
                include=("status_code", "destination_ods_code", "document_type"),
                name="transmission_recent_status",
            ),
        ),
    ]
