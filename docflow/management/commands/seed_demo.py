"""Demo data for a development machine: safe to run on every start.

Each installed app declares its own demo seeders in its ``demo.py`` (``SEEDERS``:
``(stage, function)``); this command collects them and runs them stage by stage
(docflow.demo.context.STAGES), so docflow seeds organisations, users, API keys and
documents, and transmissions how practices are reached, without either reaching
into the other. Everything is looked up before it is created, so a second run
changes nothing.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from docflow.demo.context import STAGES, DemoContext, Seeder


def declared_seeders() -> list[Seeder]:
    """Every installed app's ``demo.SEEDERS``, in stage order (apps in
    INSTALLED_APPS order within a stage); an unknown stage is a configuration
    error."""
    declared: list[tuple[int, int, Seeder]] = []
    for config in apps.get_app_configs():
        module_name = f"{config.name}.demo"
        if find_spec(module_name) is None:
            continue
        module = import_module(module_name)
        for stage, seeder in getattr(module, "SEEDERS", []):
            if stage not in STAGES:
                raise ImproperlyConfigured(
                    f"Demo seeder {seeder.__name__} ({module_name}) names an "
                    f"unknown stage {stage!r}."
                )
            declared.append((STAGES.index(stage), len(declared), seeder))
    return [seeder for _, _, seeder in sorted(declared, key=lambda d: d[:2])]


class Command(BaseCommand):
    help = (
        "Create demo organisations, users of every role, API keys and documents in "
        "flight to every practice behaviour. Idempotent. Development only unless "
        "--force."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (creates users with a published password).",
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with a published password; it runs only "
                "with DJANGO_DEBUG=1 (or pass --force on a throwaway database)."
            )
        context = DemoContext(
            say=self.stdout.write,
            style=self.style,
            keys_path=Path(settings.VAR_DIR) / "demo-api-keys.json",
        )
        for seeder in declared_seeders():
            seeder(context)
