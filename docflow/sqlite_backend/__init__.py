"""Django's SQLite backend, keeping the database file private (see
``docflow.state_files``)."""
