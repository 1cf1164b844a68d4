"""Seed the default destination profiles and the role groups."""

from django.db import migrations

MB = 1024 * 1024

# Per-destination size limits are not published by Docman; these defaults are
# conservative and editable in the admin.
PROFILES = [
    {
        "endpoint_type": "docman10",
        "name": "Docman 10",
        "channel": "connect",
        "max_file_size_bytes": 20 * MB,
        "allowed_media_types": ["application/pdf"],
        "reports_accepted": True,
        "expected_seconds_in_state": {
            "sending": 300,
            "received": 4 * 3600,
            "delivered": 3 * 24 * 3600,
        },
    },
    {
        "endpoint_type": "docman7",
        "name": "Docman 7",
        "channel": "connect",
        "max_file_size_bytes": 10 * MB,
        "allowed_media_types": ["application/pdf"],
        "reports_accepted": True,
        "expected_seconds_in_state": {
            "sending": 300,
            "received": 4 * 3600,
            "delivered": 3 * 24 * 3600,
        },
    },
    {
        "endpoint_type": "emis_mesh",
        "name": "EMIS via MESH",
        "channel": "connect",
        "max_file_size_bytes": 5 * MB,
        "allowed_media_types": ["application/pdf"],
        # Delivered (4003) is final: MESH practices reject by other routes.
        "reports_accepted": False,
        "expected_seconds_in_state": {"sending": 300, "received": 24 * 3600},
    },
    {
        "endpoint_type": "tpp_mesh",
        "name": "TPP via MESH",
        "channel": "connect",
        "max_file_size_bytes": 5 * MB,
        "allowed_media_types": ["application/pdf"],
        "reports_accepted": False,
        "expected_seconds_in_state": {"sending": 300, "received": 24 * 3600},
    },
]

# Roles and their model permissions (least privilege; nobody gets content by default).
ROLES = {
    "Clinical admin": [
        ("docflow", "view_document"),
        ("docflow", "view_organisation"),
    ],
    "IG officer": [
        ("audit", "view_auditevent"),
        ("audit", "view_accesslog"),
        ("docflow", "view_document"),
    ],
    "Integration operator": [
        ("docflow", "view_document"),
        ("docflow", "view_organisation"),
        ("docflow", "change_organisation"),
        ("docflow", "view_destinationprofile"),
        ("docflow", "change_destinationprofile"),
        ("docflow", "view_apikey"),
        ("docflow", "add_apikey"),
        ("docflow", "change_apikey"),
        ("transmissions", "view_transmission"),
    ],
    "API client": [],
    "System admin": [
        ("docflow", "view_sendingorganisation"),
        ("docflow", "add_sendingorganisation"),
        ("docflow", "change_sendingorganisation"),
        ("docflow", "view_organisation"),
        ("docflow", "add_organisation"),
        ("docflow", "change_organisation"),
        ("docflow", "view_destinationprofile"),
        ("docflow", "change_destinationprofile"),
        ("auth", "view_user"),
        ("auth", "add_user"),
        ("auth", "change_user"),
        ("auth", "view_group"),
    ],
}


def seed(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    profile_model = apps.get_model("docflow", "DestinationProfile")
    for profile in PROFILES:
        profile_model.objects.update_or_create(
            endpoint_type=profile["endpoint_type"], defaults=profile
        )
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
        ("docflow", "0001_initial"),
        ("audit", "0001_initial"),
        ("transmissions", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
