"""Let integration operators (and IG officers) see the MESH answers kept in
quarantine, so a person can match or dismiss them."""

from django.db import migrations

GRANTS = {
    "Integration operator": ["view_meshquarantinedanswer"],
    "IG officer": ["view_meshquarantinedanswer"],
}


def seed(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("transmissions")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label="transmissions", codename__in=codenames
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("transmissions", "0009_recent_status_index"),
        ("docflow", "0003_security_roles"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
