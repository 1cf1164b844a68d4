"""Read an environment file in the format systemd's EnvironmentFile= takes, as
deploy/docflow.env.example is written: ``NAME=value`` lines are set, ``# NAME=value``
lines name a variable left at its default."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "docflow.env.example"
_SET = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
_LISTED = re.compile(r"^#\s?([A-Z][A-Z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class EnvironmentFile:
    """The variables a file sets, and every variable it names (set or commented)."""

    values: dict[str, str]
    listed: frozenset[str]


def read_environment_file(path: Path = TEMPLATE) -> EnvironmentFile:
    values: dict[str, str] = {}
    listed: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if match := _SET.match(line):
            values[match.group(1)] = match.group(2).strip()
            listed.add(match.group(1))
        elif match := _LISTED.match(line):
            listed.add(match.group(1))
    return EnvironmentFile(values=values, listed=frozenset(listed))
