"""Read an environment file in the format systemd's EnvironmentFile= takes, as
deploy/docflow.env.example is written: ``NAME=value`` lines are set, ``# NAME=value``
lines name a variable left at its default; a value may be in double quotes."""

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
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values[match.group(1)] = value
            listed.add(match.group(1))
        elif match := _LISTED.match(line):
            listed.add(match.group(1))
    return EnvironmentFile(values=values, listed=frozenset(listed))
