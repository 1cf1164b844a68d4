"""``migrate`` as the owner role, then the application role's grants.

With ``DATABASE_MIGRATION_URL`` set (PostgreSQL), the default database's connection
is pointed at that URL for the run, so the owner creates and alters the tables, and
the role in ``DATABASE_URL`` is then granted what it needs (see ``audit.roles``).
Without it, Django's own ``migrate`` runs unchanged (SQLite, development).
"""

from __future__ import annotations

import dj_database_url
from django.conf import settings
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import DEFAULT_DB_ALIAS, connections

from audit.roles import app_role_grant

_CREDENTIALS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " As DATABASE_MIGRATION_URL's role when it is set."

    def handle(self, *args, **options):
        url = getattr(settings, "DATABASE_MIGRATION_URL", "")
        alias = options.get("database") or DEFAULT_DB_ALIAS
        connection = connections[alias]
        if not url or alias != DEFAULT_DB_ALIAS or connection.vendor != "postgresql":
            return super().handle(*args, **options)
        app_settings = {key: connection.settings_dict[key] for key in _CREDENTIALS}
        owner = dj_database_url.parse(url)
        connection.close()
        connection.settings_dict.update({key: owner[key] for key in _CREDENTIALS})
        try:
            result = super().handle(*args, **options)
            if app_settings["USER"] and app_settings["USER"] != owner["USER"]:
                app_role_grant(connection, app_settings["USER"])
                if options.get("verbosity", 1):
                    self.stdout.write(
                        f"Granted the application role {app_settings['USER']} "
                        "its privileges (audit tables: SELECT, INSERT)."
                    )
            return result
        finally:
            connection.close()
            connection.settings_dict.update(app_settings)
