"""Complete the role groups for hardening (issue 5), least privilege throughout.

Adds two permissions for patient-level IG work, which only the IG officer role gets:
``docflow.search_nhs_number`` (find documents by NHS number) and
``docflow.export_subject_access`` (export a patient's documents for a subject access
request). Gives the IG officer the evidence an investigation needs (delivery records,
payload metadata, sign-in records), the integration operator the outbound kill switch
and the task queue's records, and the system admin two-factor device enrolment and
sign-in lockouts. Removes nothing; grants stay editable in the admin.
"""

from django.db import migrations

NEW_PERMISSIONS = [
    ("docflow", "document", "search_nhs_number", "Can search documents by NHS number"),
    (
        "docflow",
        "document",
        "export_subject_access",
        "Can export a patient's documents for a subject access request",
    ),
]

SIGN_IN_RECORDS = [
    ("axes", "view_accessattempt"),
    ("axes", "view_accesslog"),
    ("axes", "view_accessfailurelog"),
]
ROLES = {
    "IG officer": [
        ("docflow", "search_nhs_number"),
        ("docflow", "export_subject_access"),
        ("docflow", "view_historicaldocument"),
        ("docflow", "view_payloadversion"),
        ("docflow", "view_organisation"),
        # Not view_sendingorganisation: its admin actions pause and resume sending.
        ("transmissions", "view_transmission"),
        *SIGN_IN_RECORDS,
    ],
    "Integration operator": [
        ("docflow", "view_sendingorganisation"),
        ("docflow", "view_payloadversion"),
        ("transmissions", "view_outboundhalt"),
        ("transmissions", "add_outboundhalt"),
        ("transmissions", "change_outboundhalt"),
        ("django_q", "view_failure"),
        ("django_q", "view_success"),
        ("django_q", "view_schedule"),
        ("django_q", "view_ormq"),
    ],
    "System admin": [
        ("otp_totp", "view_totpdevice"),
        ("otp_totp", "add_totpdevice"),
        ("otp_totp", "delete_totpdevice"),
        ("axes", "delete_accessattempt"),
        *SIGN_IN_RECORDS,
    ],
}


def seed(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    for app_label, model, codename, name in NEW_PERMISSIONS:
        content_type, _ = content_type_model.objects.get_or_create(
            app_label=app_label, model=model
        )
        permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    for role, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for app_label, codename in perms:
            group.permissions.add(
                permission_model.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("docflow", "0002_destination_profiles_and_roles"),
        ("casework", "0003_seed_classification_and_roles"),
        ("transmissions", "0002_outbound_controls_and_tracking"),
        ("axes", "0010_accessattemptexpiration"),
        ("otp_totp", "0003_add_timestamps"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
