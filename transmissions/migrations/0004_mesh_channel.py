"""The direct MESH channel: mailboxes (secrets by reference), directory lookups,
the inbox record, and a transmission's route, workflow and MESH status."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("docflow", "0002_destination_profiles_and_roles"),
        ("transmissions", "0003_transmission_sending_organisation_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="transmission",
            name="mesh_status",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="transmission",
            name="recipient_mailbox",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AddField(
            model_name="transmission",
            name="route_reason",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="transmission",
            name="workflow_id",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.CreateModel(
            name="MeshEndpointLookup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("ods_code", models.CharField(max_length=10)),
                ("workflow_id", models.CharField(max_length=64)),
                (
                    "mailbox_id",
                    models.CharField(
                        blank=True,
                        help_text="Empty: no mailbox receives it.",
                        max_length=20,
                    ),
                ),
                ("looked_up_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["ods_code", "workflow_id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("ods_code", "workflow_id"), name="mesh_lookup_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="MeshMailbox",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("mailbox_id", models.CharField(max_length=20, unique=True)),
                (
                    "password_ref",
                    models.CharField(
                        help_text="Name of the secret holding the mailbox password.",
                        max_length=100,
                    ),
                ),
                (
                    "shared_key_ref",
                    models.CharField(
                        help_text="Name of the secret holding the environment key.",
                        max_length=100,
                    ),
                ),
                (
                    "base_url",
                    models.URLField(
                        blank=True,
                        help_text="Empty: the DOCFLOW_MESH_BASE_URL setting.",
                    ),
                ),
                ("client_cert_path", models.CharField(blank=True, max_length=255)),
                ("client_key_path", models.CharField(blank=True, max_length=255)),
                (
                    "ca_cert_path",
                    models.CharField(
                        blank=True,
                        help_text="Empty: the system's trusted CAs.",
                        max_length=255,
                    ),
                ),
                (
                    "default_workflow_id",
                    models.CharField(default="GPCONNECT_SEND_DOCUMENT", max_length=64),
                ),
                (
                    "workflow_ids",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text='Workflow per document type, e.g. {"discharge_summary": "TOC_FHIR_IP_DISCH"}; others use the default workflow.',
                    ),
                ),
                (
                    "route_oversize_above_bytes",
                    models.PositiveBigIntegerField(
                        blank=True,
                        help_text="Send over MESH instead of Connect when the payload is larger.",
                        null=True,
                    ),
                ),
                (
                    "route_when_not_connect_endpoint",
                    models.BooleanField(
                        default=False,
                        help_text="Send over MESH when Connect does not know or does not serve the destination (DC02, DC03).",
                    ),
                ),
                ("is_active", models.BooleanField(default=True)),
                ("last_handshake_at", models.DateTimeField(blank=True, null=True)),
                ("last_handshake_error", models.CharField(blank=True, max_length=255)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "sending_organisation",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="mesh_mailbox",
                        to="docflow.sendingorganisation",
                    ),
                ),
            ],
            options={
                "verbose_name": "MESH mailbox",
                "ordering": ["mailbox_id"],
            },
        ),
        migrations.CreateModel(
            name="MeshInboxMessage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("message_id", models.CharField(max_length=64, unique=True)),
                ("message_type", models.CharField(max_length=16)),
                ("workflow_id", models.CharField(blank=True, max_length=64)),
                ("linked_message_id", models.CharField(blank=True, max_length=64)),
                ("status_code", models.CharField(blank=True, max_length=32)),
                ("response_code", models.CharField(blank=True, max_length=16)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("applied", "Applied to a transmission"),
                            ("stale", "Matched, changed nothing"),
                            ("unmatched", "No transmission of ours"),
                            ("unreadable", "Could not be read"),
                            ("not_ours", "Not a report or acknowledgement"),
                        ],
                        max_length=16,
                    ),
                ),
                ("received_at", models.DateTimeField(auto_now_add=True)),
                ("acknowledged_at", models.DateTimeField(blank=True, null=True)),
                (
                    "transmission",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="mesh_inbox_messages",
                        to="transmissions.transmission",
                    ),
                ),
                (
                    "mailbox",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="inbox_messages",
                        to="transmissions.meshmailbox",
                    ),
                ),
            ],
            options={
                "ordering": ["-received_at", "-id"],
            },
        ),
    ]
