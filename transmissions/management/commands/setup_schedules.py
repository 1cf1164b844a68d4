"""Declare the transmission engine's django-q2 schedules (idempotent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django_q.models import Schedule

# name -> (function, minutes between runs). The scheduler never catches up on missed
# runs (Q_CLUSTER catch_up=False): each run does all that is due.
SCHEDULES = {
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
