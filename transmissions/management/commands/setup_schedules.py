"""Declare the transmission engine's django-q2 schedules (idempotent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django_q.models import Schedule

# name -> (function, minutes between runs). The scheduler never catches up on missed
# runs (Q_CLUSTER catch_up=False): each run does all that is due.
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
    # Operations: stuck documents, surges, halts, destination health; and
    # the hourly counts the dashboard reads.
    "docflow: operations watch": ("operations.tasks.watch", 1),
    "docflow: roll up hourly counts": ("operations.tasks.roll_up_hourly_counts", 5),
    "docflow: prune old task failures": ("operations.tasks.prune_task_failures", 60),
    "docflow: poll MESH inboxes": ("transmissions.tasks.mesh_poll_inboxes", 1),
    "docflow: MESH handshake": ("transmissions.tasks.mesh_handshake", 24 * 60),
    # The audit chain, verified from its last checkpoint; the verdict is chained too.
    "docflow: verify the audit chain": ("audit.tasks.audit_chain_verify_scheduled", 60),
    # Retention: payload blobs past their retention period, hourly.
    "docflow: purge payloads past retention": (
        "docflow.tasks.purge_payloads",
        60,
    ),
}


class Command(BaseCommand):
    help = "Create or update the schedules the transmission engine runs on."

    def handle(self, *args, **options):
        for name, (func, minutes) in SCHEDULES.items():
            _, created = Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": minutes,
                    "repeats": -1,
                },
            )
            verb = "created" if created else "up to date"
            self.stdout.write(f"{name}: {verb} (every {minutes} min, {func})")
        stale = Schedule.objects.filter(name__startswith="docflow: ").exclude(
            name__in=SCHEDULES
        )
        for schedule in stale:
            self.stdout.write(f"{schedule.name}: removed (no longer declared)")
        stale.delete()
