"""The watch's lease moves to docflow (``docflow.Lease``), where every app's
singletons can take leases: a live lease is copied across, so a watch running
through the upgrade keeps it, then the operations table goes."""

from django.db import migrations


def copy_leases(apps, schema_editor):
    Old = apps.get_model("operations", "Lease")
    New = apps.get_model("docflow", "Lease")
    for lease in Old.objects.all():
        New.objects.update_or_create(
            name=lease.name,
            defaults={"holder": lease.holder, "expires_at": lease.expires_at},
        )


def copy_back(apps, schema_editor):
    Old = apps.get_model("operations", "Lease")
    New = apps.get_model("docflow", "Lease")
    for lease in New.objects.all():
        Old.objects.update_or_create(
            name=lease.name,
            defaults={"holder": lease.holder, "expires_at": lease.expires_at},
        )


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0011_watch_lease"),
        ("docflow", "0010_leases_and_stamps"),
    ]

    operations = [
        migrations.RunPython(copy_leases, copy_back),
        migrations.DeleteModel(name="Lease"),
    ]
