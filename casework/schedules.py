"""Casework's django-q2 schedules: name -> (function, minutes between runs).
Collected with every app's by ``manage.py setup_schedules``."""

SCHEDULES = {
    # The queue's counts are appended to by every item change; fold them so a page
    # view sums one row per bucket, team, organisation and due day.
    "docflow: compact work item counts": (
        "casework.tasks.compact_work_item_counts",
        5,
    ),
}
