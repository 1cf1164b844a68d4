"""Django's SQLite backend with one change: the database file is made private
(0600, created by us before SQLite opens it) so that its WAL, shared-memory and
journal files, which SQLite creates with the database file's mode, are private too.

A ``connection_created`` signal would come too late: by then SQLite has created the
file (and, with ``journal_mode=WAL`` in the init command, its WAL) with the umask's
0644. Settings use this backend for every SQLite database (``DATABASE_URL`` or the
default file under ``DOCFLOW_VAR_DIR``); in-memory databases and names given as
``file:`` URIs are left as SQLite makes them."""

from __future__ import annotations

from django.db.backends.sqlite3 import base

from docflow.state_files import sqlite_database_prepare


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params.get("database", ""))
        if name and not self.is_in_memory_db() and not name.startswith("file:"):
            sqlite_database_prepare(name)
        return super().get_new_connection(conn_params)
