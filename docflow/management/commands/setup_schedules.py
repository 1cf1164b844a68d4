"""Declare every app's django-q2 schedules (idempotent).

Each installed app that runs on a schedule says so in its own ``schedules.py``
(``SCHEDULES``: name -> (dotted function, minutes between runs)); this command
collects them, creates or updates each, and removes ``docflow: `` schedules no app
declares any more. The scheduler never catches up on missed runs (Q_CLUSTER
catch_up=False): each run does all that is due.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand
from django_q.models import Schedule


def declared_schedules() -> dict[str, tuple[str, int]]:
    """Every installed app's ``schedules.SCHEDULES``, merged; a name declared by
    two apps is a configuration error."""
    declared: dict[str, tuple[str, int]] = {}
    for config in apps.get_app_configs():
        module_name = f"{config.name}.schedules"
        if find_spec(module_name) is None:
            continue
        module = import_module(module_name)
        for name, schedule in getattr(module, "SCHEDULES", {}).items():
            if name in declared:
                raise ImproperlyConfigured(
                    f"Schedule {name!r} is declared twice ({module_name})."
                )
            declared[name] = schedule
    return declared


class Command(BaseCommand):
    help = "Create or update the schedules every app declares in its schedules.py."

    def handle(self, *args, **options):
        schedules = declared_schedules()
        for name, (func, minutes) in schedules.items():
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
            name__in=schedules
        )
        for schedule in stale:
            self.stdout.write(f"{schedule.name}: removed (no longer declared)")
        stale.delete()
