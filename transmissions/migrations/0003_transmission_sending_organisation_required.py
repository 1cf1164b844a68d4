import django.db.models.deletion
from django.db import migrations, models


def backfill(apps, schema_editor):
    """Earlier transmissions belong to their document's sending organisation."""
    Transmission = apps.get_model("transmissions", "Transmission")
    Document = apps.get_model("docflow", "Document")
    for transmission in Transmission.objects.filter(sending_organisation__isnull=True):
        transmission.sending_organisation_id = Document.objects.values_list(
            "sending_organisation_id", flat=True
        ).get(pk=transmission.document_id)
        transmission.save(update_fields=["sending_organisation"])


class Migration(migrations.Migration):
    dependencies = [
        ("docflow", "0002_destination_profiles_and_roles"),
        ("transmissions", "0002_outbound_controls_and_tracking"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="transmission",
            name="sending_organisation",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="transmissions",
                to="docflow.sendingorganisation",
            ),
        ),
    ]
