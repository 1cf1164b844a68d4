"""Let integration operators configure source systems and their document type
mappings in the admin (every change audited), and system admins see them."""

from django.db import migrations

GRANTS = {
    "Integration operator": [
        "view_sourcesystem",
        "add_sourcesystem",
        "change_sourcesystem",
        "view_documenttypemapping",
        "add_documenttypemapping",
        "change_documenttypemapping",
    ],
    "System admin": ["view_sourcesystem", "view_documenttypemapping"],
}


def seed(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("intake")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label="intake", codename__in=codenames
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("intake", "0001_initial"),
        ("docflow", "0003_security_roles"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
