"""What ``manage.py seed_demo`` hands each app's demo seeders, and the order they
run in.

Each installed app that has demo data says so in its own ``demo.py`` (``SEEDERS``: a
list of ``(stage, function)``); the command collects them like ``setup_schedules``
collects ``schedules.py``, runs them stage by stage (apps in INSTALLED_APPS order
within a stage) and passes one :class:`DemoContext` along, so a later seeder finds
what an earlier one made. Every seeder is idempotent: it looks up before it creates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Organisations and destinations, then how they are reached (channels), then who
# uses them, then documents through the real intake, then what was made.
STAGES = ("organisations", "channels", "accounts", "documents", "summary")


@dataclass
class DemoContext:
    """The run so far: where to write, and what the earlier seeders made."""

    say: Callable[[str], None]
    style: Any
    keys_path: Path
    senders: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    api_keys: dict[str, tuple[Any, str]] = field(default_factory=dict)
    documents_created: int = 0


Seeder = Callable[[DemoContext], None]
