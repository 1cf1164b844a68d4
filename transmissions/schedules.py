"""The transmission engine's django-q2 schedules: name -> (function, minutes between
runs). Collected with every app's by ``manage.py setup_schedules``."""

SCHEDULES = {
    # The tracker's loop, which also keeps the clock (retries, circuit trials and
    # expired claims queued as they come due); a run hands over to the next, so
    # this only restarts it after a lost cluster.
    "docflow: track Connect statuses": ("transmissions.tasks.track", 1),
    "docflow: queue due work": ("transmissions.tasks.dispatch_due", 1),
    "docflow: find documents stuck in sending": (
        "transmissions.tasks.reconcile_sending",
        1,
    ),
    "docflow: re-check destinations": (
        "transmissions.tasks.reconcile_organisations",
        60,
    ),
    "docflow: poll MESH inboxes": ("transmissions.tasks.mesh_poll_inboxes", 1),
    "docflow: MESH handshake": ("transmissions.tasks.mesh_handshake", 24 * 60),
    "docflow: MESH sends left unanswered": (
        "transmissions.tasks.mesh_settle_unanswered",
        60,
    ),
}
