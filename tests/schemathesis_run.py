"""Run the schemathesis command line against a served API and return its report.

Its pytest plugin does not work with the pytest in use, so the suite calls the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_schemathesis(
    *,
    schema: str,
    header: str,
    workdir: Path,
    config_toml: str,
    base_url: str | None = None,
    checks: tuple[str, ...] = (),
    max_examples: int = 30,
) -> tuple[int, str]:
    """Deterministic, single worker; returns (exit code, stdout + stderr)."""
    config = workdir / "schemathesis.toml"
    config.write_text(config_toml, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        schema,
        "--header",
        header,
        "--max-examples",
        str(max_examples),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    if base_url:
        command += ["--url", base_url]
    if checks:
        command += ["--checks", ",".join(checks)]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=workdir, timeout=600, check=False
    )
    report = result.stdout + result.stderr
    print(report)
    return result.returncode, report
