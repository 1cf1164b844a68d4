"""Index the queue's order over active items only: the first page of 100,000 open
items reads 26 index entries instead of sorting them all (bench/queue.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0004_resolution_kinds"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="workitem",
            index=models.Index(
                condition=models.Q(("status__in", ["open", "assigned"])),
                fields=["opened_at", "id"],
                name="work_item_active_queue",
            ),
        ),
    ]
