"""MLLP intake throughput: MDM^T02 with a PDF over concurrent MLLP connections.

Sets up a dedicated PostgreSQL database (bench/intake.py's helpers), migrates it,
creates a sending organisation and an MLLP source system, starts
``manage.py mllp_listener`` (``--listeners`` processes sharing the port, each with
``--processes`` worker processes, or ``--workers`` threads with ``--processes 0``)
with production settings, warms up, then sends ``--messages`` MDM^T02 messages, each
with its own TXA-12 and a ``--payload-kb`` PDF, over ``--connections`` connections
of python-hl7's own MLLPClient (one thread each, one message in flight each).

Prints acknowledged messages/s, time to ACK (p50/p95/p99), CPU ms per message (each
listener and its workers, PostgreSQL, the client, the machine), the load average
and anything but AA, and checks the database holds exactly one document, one
payload version and one audit event per acknowledged message. Run
``python bench/mllp.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psutil

BENCH_DIR = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_intake", BENCH_DIR / "intake.py")
bench_intake = importlib.util.module_from_spec(_spec)
sys.modules["bench_intake"] = bench_intake
_spec.loader.exec_module(bench_intake)

from hl7.client import MLLPClient  # noqa: E402

from intake.mdm_samples import mdm_message  # noqa: E402
from tests.samples import pdf_bytes  # noqa: E402

ROOT = BENCH_DIR.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/docflow_bench_mllp"
TARGET_RATE = 150.0
TARGET_P99_MS = 250.0

SETUP_SCRIPT = """
import json, sys, uuid
import django
django.setup()
from docflow.models import SendingOrganisation
from intake.models import SourceSystem

organisation, _ = SendingOrganisation.objects.get_or_create(
    ods_code="RBENCH", defaults={"name": "Benchmark Hospitals NHS Trust"}
)
run = uuid.uuid4().hex[:8]
source = SourceSystem.objects.create(
    code=f"bench-{run}", name="Benchmark engine", channel="mllp",
    sending_organisation=organisation, sending_facility="RBENCH",
    sending_application=f"BENCH{run}",
)
json.dump({"application": source.sending_application,
           "source": source.document_source}, sys.stdout)
"""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark MDM^T02 over MLLP on PostgreSQL. Target: "
            f">= {TARGET_RATE:.0f} msg/s acknowledged, "
            f"p99 ACK < {TARGET_P99_MS:.0f} ms."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--payload-kb", type=int, default=100)
    parser.add_argument(
        "--listeners", type=int, default=1, help="listener processes on the port"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=6,
        help="worker processes per listener (0: worker threads)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=6,
        help="worker threads per listener, with --processes 0",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database (created if missing; env BENCH_DATABASE_URL)",
    )
    parser.add_argument("--fresh", action="store_true", help="recreate the database")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument(
        "--enforce-target", action="store_true", help="exit 3 when a target is missed"
    )
    return parser.parse_args(argv)


def _ack_code(raw: bytes) -> str:
    for segment in raw.decode(errors="replace").strip("\x0b\x1c\r").split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    return "(none)"


def wait_listening(port: int, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise SystemExit("a listener exited while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the listener did not start listening")


def send_all(
    *, port: int, messages: list[str], connections: int
) -> tuple[list[float], dict[str, int], float]:
    """Send every message once; (latencies in ms, ACK codes counted, seconds)."""
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()
    lanes = [messages[i::connections] for i in range(connections)]

    def lane(batch: list[str]) -> None:
        mine, counted = [], {}
        with MLLPClient("127.0.0.1", port) as client:
            for message in batch:
                started = time.perf_counter()
                answer = client.send_message(message)
                mine.append((time.perf_counter() - started) * 1000)
                code = _ack_code(answer)
                counted[code] = counted.get(code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in counted.items():
                codes[code] = codes.get(code, 0) + count

    threads = [threading.Thread(target=lane, args=(batch,)) for batch in lanes]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, codes, time.perf_counter() - started


def _tree_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of a listener itself, of its worker processes)."""
    process = psutil.Process(pid)
    own = sum(process.cpu_times()[:2])
    workers = 0.0
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            workers += sum(child.cpu_times()[:2])
    return own, workers


def cpu_snapshot(processes: list[subprocess.Popen], database: str) -> dict:
    """CPU seconds used so far: each listener and its worker processes, PostgreSQL
    (our database's sessions and the server's own processes), this client, and the
    whole machine."""
    return {
        "listeners": [_tree_cpu(p.pid) for p in processes],
        "postgres": bench_intake.postgres_cpu_seconds(database),
        "client": bench_intake.client_cpu_seconds(),
        "busy": bench_intake.busy_cpu_seconds(),
    }


def cpu_lines(before: dict, after: dict, *, messages: int, seconds: float) -> str:
    """CPU ms per acknowledged message: each listener process (with its worker
    processes), PostgreSQL, this client, the whole machine."""

    def per(used: float) -> str:
        return f"{1000 * used / max(messages, 1):.1f}"

    parts, total = [], 0.0
    for (own_a, workers_a), (own_b, workers_b) in zip(
        before["listeners"], after["listeners"], strict=True
    ):
        own, workers = own_b - own_a, workers_b - workers_a
        total += own + workers
        parts.append(per(own) + (f" + workers {per(workers)}" if workers else ""))
    postgres = (
        per(after["postgres"] - before["postgres"])
        if before["postgres"] is not None and after["postgres"] is not None
        else "n/a"
    )
    busy = after["busy"] - before["busy"]
    cores = os.cpu_count() or 1
    return (
        f"CPU ms/message: listeners {per(total)} ({'; '.join(parts)}), "
        f"postgres {postgres}, client {per(after['client'] - before['client'])}, "
        f"machine {per(busy)} (machine {100 * busy / (seconds * cores):.0f}% busy)"
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    content = pdf_bytes("Benchmark discharge letter", pad_to=args.payload_kb * 1024)
    db_description = bench_intake.ensure_database(args.database_url, fresh=args.fresh)
    workdir = Path(tempfile.mkdtemp(prefix="docflow-bench-mllp-"))
    payload_dir = workdir / "payloads"
    payload_dir.mkdir()
    env = bench_intake.server_env(
        database_url=args.database_url, payload_dir=payload_dir, var_dir=workdir
    )
    port = args.port or bench_intake.free_port()
    processes: list[subprocess.Popen] = []
    try:
        log("migrating")
        bench_intake.run_checked(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            env=env,
            what="migrate",
        )
        setup = json.loads(
            bench_intake.run_checked(
                [sys.executable, "-c", SETUP_SCRIPT], env=env, what="setup"
            )
        )
        for number in range(args.listeners):
            log_file = (workdir / f"listener-{number}.log").open("ab")
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "mllp_listener",
                        "--port",
                        str(port),
                        "--certfile",
                        "",
                        "--workers",
                        str(args.workers),
                        "--processes",
                        str(args.processes),
                        "--reuse-port",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_listening(port, processes)
        run = uuid.uuid4().hex[:8]

        def batch(prefix: str, count: int) -> list[str]:
            return [
                mdm_message(
                    unique_id=f"{prefix}-{run}-{n}",
                    content=content,
                    facility="RBENCH",
                    application=setup["application"],
                )
                for n in range(count)
            ]

        log(f"warming up ({args.warmup} messages)")
        send_all(port=port, messages=batch("warm", args.warmup), connections=2)
        messages = batch("load", args.messages)
        log(
            f"sending {args.messages} MDM^T02 ({len(messages[0]) // 1024} KB each) "
            f"over {args.connections} connections"
        )
        database = urlsplit(args.database_url).path.lstrip("/")
        before = cpu_snapshot(processes, database)
        latencies, codes, seconds = send_all(
            port=port, messages=messages, connections=args.connections
        )
        after = cpu_snapshot(processes, database)
        load = os.getloadavg()
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        counts = None
        if "setup" in locals():
            counts = bench_intake.stored_counts(
                args.database_url, source_system=setup["source"]
            )
        shutil.rmtree(workdir, ignore_errors=True)

    accepted = codes.get("AA", 0)
    rate = accepted / seconds
    p50, p95, p99 = (percentile(latencies, s) for s in (0.50, 0.95, 0.99))
    expected = accepted + args.warmup
    stored_ok = counts is not None and (
        counts.documents == counts.payload_versions == counts.audit_events == expected
    )
    met = rate >= TARGET_RATE and p99 < TARGET_P99_MS
    lines = [
        f"database: {bench_intake.redact(args.database_url)} — {db_description}",
        f"listeners: {args.listeners} processes x "
        + (
            f"{args.processes} worker processes; "
            if args.processes
            else f"{args.workers} worker threads; "
        )
        + f"cores: {os.cpu_count()}",
        f"messages: {args.messages} MDM^T02, PDF {len(content) // 1024} KB, "
        f"{args.connections} connections",
        f"acknowledged: {accepted} AA in {seconds:.1f} s = {rate:.1f} msg/s "
        f"(target >= {TARGET_RATE:.0f})",
        f"time to ACK: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, "
        f"max {max(latencies):.0f} ms, mean {statistics.fmean(latencies):.0f} ms "
        f"(target p99 < {TARGET_P99_MS:.0f})",
        cpu_lines(before, after, messages=max(accepted, 1), seconds=seconds),
        f"load average (1/5/15 min) after the run: "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"other answers: {({k: v for k, v in codes.items() if k != 'AA'}) or 'none'}",
        f"stored (incl. warm-up): {counts} — {'ok' if stored_ok else 'MISMATCH'}",
        f"targets: {'met' if met else 'missed'}",
    ]
    print("\n".join(lines), flush=True)
    if accepted != args.messages or not stored_ok:
        return 1
    if args.enforce_target and not met:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
