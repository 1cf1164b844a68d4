"""governance's own django-q2 schedules: name -> (function, minutes between runs).
Collected with every app's by ``manage.py setup_schedules``. The schedule keeps its
``docflow:`` name so that an existing row is updated in place, not duplicated."""

SCHEDULES = {
    # Retention: payload blobs past their retention period, hourly.
    "docflow: purge payloads past retention": ("governance.tasks.purge_payloads", 60),
}
