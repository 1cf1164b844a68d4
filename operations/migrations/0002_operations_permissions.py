"""Let integration operators and system admins see incidents and the dashboard, and
work incidents and destination pauses in the admin."""

from django.db import migrations

GRANTS = {
    "Integration operator": [
        "view_incident",
        "change_incident",
        "view_destinationpause",
        "change_destinationpause",
        "view_hourlycount",
    ],
    "System admin": ["view_incident", "view_destinationpause"],
}


def seed(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("operations")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label="operations", codename__in=codenames
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0001_initial"),
        ("docflow", "0002_destination_profiles_and_roles"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
