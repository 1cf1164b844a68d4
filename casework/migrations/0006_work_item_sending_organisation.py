"""Copy each document's sending organisation onto its work items (and their history
rows), so the organisation grant, the counts per category and the queue filters
read the item alone instead of joining every item to its document
(bench/queue.py). The column is filled here and made required in 0007: PostgreSQL
refuses to change a column in the transaction that queued checks of its new
foreign keys."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_sending_organisation(apps, schema_editor):
    """Every item, and every history row of one, takes its document's sender."""
    Document = apps.get_model("docflow", "Document")
    sender = Subquery(
        Document.objects.filter(pk=OuterRef("document_id")).values(
            "sending_organisation_id"
        )[:1]
    )
    for name in ("WorkItem", "HistoricalWorkItem"):
        model = apps.get_model("casework", name)
        model.objects.filter(sending_organisation__isnull=True).update(
            sending_organisation_id=sender
        )


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0005_work_item_active_queue_index"),
        ("docflow", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalworkitem",
            name="sending_organisation",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="docflow.sendingorganisation",
            ),
        ),
        migrations.AddField(
            model_name="workitem",
            name="sending_organisation",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="work_items",
                to="docflow.sendingorganisation",
            ),
        ),
        migrations.RunPython(copy_sending_organisation, migrations.RunPython.noop),
    ]
