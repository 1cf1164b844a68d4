"""Audit trail throughput and verification on PostgreSQL.

Migrates a dedicated database (``--database``, default ``docflow_audit_bench``, on
the server of ``DATABASE_URL``), then:

1. appends audit events with 1, 4 and 8 concurrent writer processes, each event in
   its own transaction through ``audit.services.audit_record``, and prints events/s
   per writer count. With ``--sealing deferred`` (the default, PostgreSQL's) writers
   insert unsealed events and one sealer process (``audit.sealing``) chains them
   while they run; the sealer's backlog when the writers stop, the time it needs to
   catch up and a verification of the chain are printed too. ``--sealing inline``
   is the old way: each writer chains its event under the head lock;
2. grows the chain to ``--chain`` events (default 1,000,000; bulk appends of
   ``--batch`` events each, through ``audit_record_many``, sealed batch by batch),
   publishing a signed external checkpoint every ``--checkpoint-every`` events, and
   prints the time of one full ``audit_verify`` against every external checkpoint.

CPU is reported per event: the bench's own processes (writers and sealer, from
their own process time), their PostgreSQL backends (``/proc/<pid>/stat``) and the
whole machine (``/proc/stat``, anyone else included), with the load average, since
the machine may be shared.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
.venv/bin/python bench/audit.py [--seconds 10] [--chain 1000000]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(BENCH_DIR.parent))


def _setup(url: str, checkpoint_dir: str, sealing: str = "deferred") -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DOCFLOW_AUDIT_SEALING"] = sealing
    os.environ["DOCFLOW_AUDIT_CHECKPOINT_DIR"] = checkpoint_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docflow.settings")
    if "DJANGO_SECRET_KEY" not in os.environ:
        import secrets

        from docflow.configuration import new_payload_key_spec

        os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
        os.environ["DOCFLOW_PAYLOAD_KEYS"] = new_payload_key_spec()
    import django

    django.setup()


def _backend_cpu() -> float:
    """CPU seconds used so far by this process's PostgreSQL backend."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer(url, checkpoint_dir, sealing, seconds, start, out) -> None:
    _setup(url, checkpoint_dir, sealing)
    from audit.services import audit_record

    backend = _backend_cpu()
    start.wait()
    cpu = time.process_time()
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        audit_record(
            action="bench.event",
            target_type="document",
            target_id=str(count),
            data={"n": count},
        )
        count += 1
    cpu = time.process_time() - cpu
    out.put((count, cpu, _backend_cpu() - backend))


def _sealer(url, checkpoint_dir, start, stop, out) -> None:
    _setup(url, checkpoint_dir, "deferred")
    from audit.sealing import audit_seal_pending

    backend = _backend_cpu()
    start.wait()
    cpu = time.process_time()
    sealed = 0
    while not stop.is_set():
        done = audit_seal_pending()
        sealed += done
        if not done:
            time.sleep(0.2)
    cpu = time.process_time() - cpu
    out.put((sealed, cpu, _backend_cpu() - backend))


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split()[1:9]]
    idle = fields[3] + fields[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def writers_run(url, checkpoint_dir, writers, seconds, sealing) -> dict:
    ctx = multiprocessing.get_context("spawn")
    start, stop, out, sealed_out = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_writer, args=(url, checkpoint_dir, sealing, seconds, start, out)
        )
        for _ in range(writers)
    ]
    sealer = None
    if sealing == "deferred":
        sealer = ctx.Process(
            target=_sealer, args=(url, checkpoint_dir, start, stop, sealed_out)
        )
        procs.append(sealer)
    for proc in procs:
        proc.start()
    time.sleep(3)  # let every writer import Django before the clock starts
    busy_before, total_before = _machine_busy()
    start.set()
    answers = [out.get(timeout=seconds + 120) for _ in range(writers)]
    total = sum(answer[0] for answer in answers)
    writer_cpu = sum(answer[1] for answer in answers)
    postgres_cpu = sum(answer[2] for answer in answers)
    from audit.sealing import audit_seal_lag

    backlog = audit_seal_lag().pending
    caught_up = time.monotonic()
    while sealer is not None and audit_seal_lag().pending:
        time.sleep(0.05)
    catch_up = time.monotonic() - caught_up
    busy_after, total_after = _machine_busy()
    stop.set()
    sealer_cpu = 0.0
    if sealer is not None:
        _, sealer_cpu, sealer_backend = sealed_out.get(timeout=120)
        postgres_cpu += sealer_backend
    for proc in procs:
        proc.join()
    return {
        "rate": total / seconds,
        "events": total,
        "backlog": backlog,
        "catch_up": catch_up,
        "writer_cpu_ms": 1000 * writer_cpu / max(total, 1),
        "sealer_cpu_ms": 1000 * sealer_cpu / max(total, 1),
        "postgres_cpu_ms": 1000 * postgres_cpu / max(total, 1),
        "machine_cpu_ms": 1000 * (busy_after - busy_before) / max(total, 1),
        "machine_busy": (busy_after - busy_before) / (total_after - total_before),
    }


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="docflow_audit_bench")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", default="1,4,8")
    parser.add_argument("--chain", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--checkpoint-every", type=int, default=100_000)
    parser.add_argument("--sealing", choices=["deferred", "inline"], default="deferred")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(base)
    url = urlunsplit(parts._replace(path=f"/{args.database}"))
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        admin.execute(f'CREATE DATABASE "{args.database}"')
    checkpoint_dir = tempfile.mkdtemp(prefix="audit-bench-checkpoints-")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _setup(url, checkpoint_dir, args.sealing)
    from audit.signing import private_key_text

    os.environ["DOCFLOW_AUDIT_SIGNING_KEY"] = private_key_text(
        Ed25519PrivateKey.generate()
    )
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from audit.selectors import audit_chain_verify

    print(f"sealing: {args.sealing}; load average {_load()}", flush=True)
    for writers in [int(n) for n in args.writers.split(",")]:
        got = writers_run(url, checkpoint_dir, writers, args.seconds, args.sealing)
        verdict = audit_chain_verify()
        print(
            f"append: {writers} writers: {got['rate']:,.0f} events/s "
            f"({got['events']:,} in {args.seconds:.0f} s); CPU ms/event: writers "
            f"{got['writer_cpu_ms']:.2f}, sealer {got['sealer_cpu_ms']:.2f}, "
            f"postgres {got['postgres_cpu_ms']:.2f}, "
            f"machine {got['machine_cpu_ms']:.2f} "
            f"({got['machine_busy']:.0%} busy); unsealed when the writers stopped "
            f"{got['backlog']:,}, sealed {got['catch_up']:.1f} s later; chain "
            f"{'OK' if verdict.ok else 'BROKEN'} ({verdict.checked:,} events); "
            f"load average {_load()}",
            flush=True,
        )
        if not verdict.ok:
            sys.exit(1)

    from audit.models import AuditChainHead
    from audit.sealing import audit_seal_pending
    from audit.services import EventSpec, audit_chain_checkpoint, audit_record_many
    from audit.signing import checkpoints_trusted

    started = time.monotonic()
    next_checkpoint = args.checkpoint_every
    while AuditChainHead.objects.get(pk=1).sequence < args.chain:
        audit_record_many(
            [
                EventSpec("bench.event", "document", str(n), {"n": n})
                for n in range(args.batch)
            ]
        )
        audit_seal_pending()
        if AuditChainHead.objects.get(pk=1).sequence >= next_checkpoint:
            audit_chain_checkpoint()
            next_checkpoint += args.checkpoint_every
    audit_chain_checkpoint()
    head = AuditChainHead.objects.get(pk=1).sequence
    print(f"chain: {head:,} events built in {time.monotonic() - started:.1f} s")

    started, cpu = time.monotonic(), time.process_time()
    external = checkpoints_trusted([Path(checkpoint_dir)])
    verdict = audit_chain_verify(external=external)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    print(
        f"verify: {verdict.checked:,} events against {len(external)} external "
        f"checkpoints: {'OK' if verdict.ok else 'BROKEN'} in {elapsed:.1f} s "
        f"(verifier CPU {cpu:.1f} s, {1e6 * cpu / max(verdict.checked, 1):.1f} "
        f"us/event); load average {_load()}"
    )
    if not verdict.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
