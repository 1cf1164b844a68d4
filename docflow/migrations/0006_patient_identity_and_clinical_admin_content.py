"""Patient details on the work item page (issue 14), least privilege throughout.

Adds ``docflow.view_patient_identity`` (reveal a document's NHS number, name and birth
date, each reveal access-logged) and gives the Clinical admin role it and
``docflow.view_document_content``: clinical admins trace the patient and read the
letter to work a rejection (REJ01: patient not registered). The IG officer role gets
neither: it reviews the access log and already has NHS number search and subject
access export for investigations, so it never needs a document's patient on a work
item page. Grants stay editable in the admin.
"""

from django.db import migrations

ROLES = {
    "Clinical admin": [
        ("docflow", "view_patient_identity"),
        ("docflow", "view_document_content"),
    ],
}


def seed(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
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
        ("docflow", "0005_bounded_conversion"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="document",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("view_document_content", "Can view patient content of documents"),
                    (
                        "view_patient_identity",
                        "Can reveal a document's patient NHS number, name and birth "
                        "date",
                    ),
                ],
            },
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
