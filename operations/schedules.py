"""Operations' django-q2 schedules: name -> (function, minutes between runs).
Collected with every app's by ``manage.py setup_schedules``."""

SCHEDULES = {
    # Stuck documents, surges, halts, destination health, failing tasks and feeds.
    "docflow: operations watch": ("operations.tasks.watch", 1),
    # The hourly counts the dashboard reads.
    "docflow: roll up hourly counts": ("operations.tasks.roll_up_hourly_counts", 5),
    "docflow: prune old task failures": ("operations.tasks.prune_task_failures", 60),
}
