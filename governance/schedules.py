"""docflow's own django-q2 schedules: name -> (function, minutes between runs).
Collected with every app's by ``manage.py setup_schedules``."""

SCHEDULES = {
    # Retention: payload blobs past their retention period, hourly.
    "docflow: purge payloads past retention": ("docflow.tasks.purge_payloads", 60),
}
