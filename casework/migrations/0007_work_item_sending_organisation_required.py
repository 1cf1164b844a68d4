"""Every work item names its document's sender (filled by 0006), and the counts per
category read the active items from one partial index that holds every column they
group and filter on."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0006_work_item_sending_organisation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="workitem",
            name="sending_organisation",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="work_items",
                to="docflow.sendingorganisation",
            ),
        ),
        migrations.AddIndex(
            model_name="workitem",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "assigned"])),
                fields=[
                    "bucket",
                    "team",
                    "sending_organisation",
                    "due_at",
                    "assignee",
                    "opened_at",
                    "category",
                    "reason_code",
                ],
                name="work_item_active_counts",
            ),
        ),
    ]
