"""Resolution becomes a kind (its old free text moved to resolution_reason by 0003),
and an ended item must say how it ended."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0003_seed_classification_and_roles"),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicalworkitem",
            name="resolution",
            field=models.CharField(
                blank=True,
                choices=[
                    ("resend", "Resent unchanged"),
                    ("corrected_version", "Corrected version sent"),
                    ("reroute", "Rerouted to another practice"),
                    ("other_route", "Sent by another route"),
                    ("no_further_action", "No further action"),
                    ("document_cancelled", "Document cancelled"),
                    ("document_moved_on", "Document moved on (system)"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="workitem",
            name="resolution",
            field=models.CharField(
                blank=True,
                choices=[
                    ("resend", "Resent unchanged"),
                    ("corrected_version", "Corrected version sent"),
                    ("reroute", "Rerouted to another practice"),
                    ("other_route", "Sent by another route"),
                    ("no_further_action", "No further action"),
                    ("document_cancelled", "Document cancelled"),
                    ("document_moved_on", "Document moved on (system)"),
                ],
                max_length=32,
            ),
        ),
        migrations.AddConstraint(
            model_name="workitem",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["open", "assigned"]),
                    models.Q(("resolution", ""), _negated=True),
                    _connector="OR",
                ),
                name="work_item_ended_has_resolution",
            ),
        ),
    ]
