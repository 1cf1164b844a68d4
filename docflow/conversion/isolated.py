"""Running one conversion in a child process with hard limits, and saying how it
ended. The child is ``python -m docflow.conversion.child`` started with
:mod:`subprocess` (a qcluster worker is a daemonic process, which
:mod:`multiprocessing` may not give children); the child limits its own CPU time,
address space and priority, and the parent kills it at its wall-time limit
(``subprocess.run(timeout=...)``). The child gets a minimal environment: no
database URL, no secrets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from docflow.conversion.html import RefusedResource, refused_summary

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What the child may see of the environment: enough for Python, fonts and locale.
_CHILD_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "XDG_DATA_DIRS",
    "FONTCONFIG_FILE",
    "FONTCONFIG_PATH",
    "VIRTUAL_ENV",
)
_ANSWER_LIMIT_BYTES = 64 * 1024


@dataclass(frozen=True)
class ConversionLimits:
    """Hard limits on one conversion (from the destination profile)."""

    wall_seconds: float
    cpu_seconds: float
    memory_bytes: int
    max_pages: int
    nice: int = 10

    def as_dict(self) -> dict[str, float | int]:
        return {
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "memory_mib": self.memory_bytes // 2**20,
            "max_pages": self.max_pages,
        }


@dataclass(frozen=True)
class ConversionOutcome:
    """How one isolated conversion ended: a PDF (with what was refused), a limit
    exceeded (``limit``: pages, wall_time, cpu_time or memory; past the page limit,
    ``page_count`` is the page layout had reached), content that cannot
    be converted (``failure``: a ConversionFailed code), or a child that died
    without saying why (``crashed``: how it ended)."""

    pdf: bytes | None = field(default=None, repr=False)
    page_count: int | None = None
    refused: tuple[RefusedResource, ...] = ()
    limit: str = ""
    failure: str = ""
    # Why it cannot be converted, in conversion's own words (never the content's).
    message: str = ""
    crashed: str = ""
    seconds: float = 0.0

    @property
    def converted(self) -> bool:
        return self.pdf is not None

    def refused_summary(self) -> list[dict]:
        """What was refused, counted by (kind, scheme, host)."""
        return refused_summary([resource.as_dict() for resource in self.refused])


def _child_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _CHILD_ENVIRONMENT if name in os.environ}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def conversion_run_isolated(
    content: bytes, *, media_type: str, limits: ConversionLimits
) -> ConversionOutcome:
    """Convert HTML or an image to PDF in a child process under ``limits``."""
    command = [
        sys.executable,
        "-m",
        "docflow.conversion.child",
        "--media-type",
        media_type,
        "--max-pages",
        str(limits.max_pages),
        "--cpu-seconds",
        str(limits.cpu_seconds),
        "--memory-bytes",
        str(limits.memory_bytes),
        "--wall-seconds",
        str(limits.wall_seconds),
        "--nice",
        str(limits.nice),
    ]
    started = time.monotonic()
    try:
        finished = subprocess.run(  # noqa: S603 (our own module, fixed arguments)
            command,
            input=content,
            capture_output=True,
            timeout=limits.wall_seconds,
            cwd=PROJECT_ROOT,
            env=_child_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ConversionOutcome(limit="wall_time", seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    returncode = finished.returncode
    if returncode < 0:
        name = _signal_name(returncode)
        if returncode == -signal.SIGXCPU:
            return ConversionOutcome(limit="cpu_time", seconds=seconds)
        if returncode == -signal.SIGALRM:
            return ConversionOutcome(limit="wall_time", seconds=seconds)
        return ConversionOutcome(crashed=name, seconds=seconds)
    header_line, _, body = finished.stdout.partition(b"\n")
    try:
        header = json.loads(header_line[:_ANSWER_LIMIT_BYTES]) if header_line else {}
    except ValueError:
        header = {}
    status = header.get("status") if isinstance(header, dict) else None
    if returncode != 0 or status not in ("ok", "limit", "failed"):
        # Python itself failing for want of memory exits 1 with no answer.
        if b"MemoryError" in finished.stderr[-4096:]:
            return ConversionOutcome(limit="memory", seconds=seconds)
        return ConversionOutcome(crashed=f"exit {returncode}", seconds=seconds)
    if status == "limit":
        return ConversionOutcome(
            limit=str(header.get("limit", "")),
            page_count=header.get("pages")
            if isinstance(header.get("pages"), int)
            else None,
            seconds=seconds,
        )
    if status == "failed":
        return ConversionOutcome(
            failure=str(header.get("code", "conversion_failed")),
            message=str(header.get("message", ""))[:255],
            seconds=seconds,
        )
    refused = tuple(
        RefusedResource(
            kind=str(entry.get("kind", "")),
            scheme=str(entry.get("scheme", "")),
            host=str(entry.get("host", "")),
        )
        for entry in header.get("refused", [])
        if isinstance(entry, dict)
    )
    return ConversionOutcome(
        pdf=body,
        page_count=int(header.get("pages") or 0) or None,
        refused=refused,
        seconds=seconds,
    )
