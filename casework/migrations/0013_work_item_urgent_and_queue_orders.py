"""Copy each document's urgent flag onto its work items (and their history rows), so
the queue can list urgent items first without joining documents; and the partial
indexes the queue's orders read: urgent first (then overdue, then oldest) and due
date soonest."""

from django.db import migrations, models


def copy_urgent(apps, schema_editor):
    """Every item, and every history row of one, of an urgent document is urgent."""
    Document = apps.get_model("docflow", "Document")
    urgent = Document.objects.filter(urgent=True).values("pk")
    for name in ("WorkItem", "HistoricalWorkItem"):
        model = apps.get_model("casework", name)
        model.objects.filter(document_id__in=urgent, urgent=False).update(urgent=True)


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0012_reason_action_class_and_connect_reasons"),
        ("docflow", "0005_bounded_conversion"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalworkitem",
            name="urgent",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="workitem",
            name="urgent",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(copy_urgent, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="workitem",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "assigned"])),
                fields=["urgent", "opened_at", "id"],
                include=("due_at",),
                name="work_item_active_priority",
            ),
        ),
        migrations.AddIndex(
            model_name="workitem",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "assigned"])),
                fields=["due_at", "id"],
                name="work_item_active_due",
            ),
        ),
    ]
