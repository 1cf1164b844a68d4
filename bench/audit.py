"""Audit trail throughput and verification on PostgreSQL.

Migrates a dedicated database (``--database``, default ``docflow_audit_bench``, on
the server of ``DATABASE_URL``), then:

1. appends audit events with 1, 4 and 8 concurrent writer processes, each event in
   its own transaction through ``audit.services.audit_record`` (the chain guards and
   the head lock included), and prints events/s per writer count;
2. grows the chain to ``--chain`` events (default 1,000,000; bulk appends of
   ``--batch`` events each, through ``audit_record_many``), publishing a signed
   external checkpoint every ``--checkpoint-every`` events, and prints the time of
   one full ``audit_verify`` against every external checkpoint.

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


def _setup(url: str, checkpoint_dir: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DOCFLOW_AUDIT_CHECKPOINT_DIR"] = checkpoint_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docflow.settings")
    if "DJANGO_SECRET_KEY" not in os.environ:
        import secrets

        from docflow.configuration import new_payload_key_spec

        os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
        os.environ["DOCFLOW_PAYLOAD_KEYS"] = new_payload_key_spec()
    import django

    django.setup()


def _writer(url: str, checkpoint_dir: str, seconds: float, start, out) -> None:
    _setup(url, checkpoint_dir)
    from audit.services import audit_record

    start.wait()
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
    out.put(count)


def writers_run(url: str, checkpoint_dir: str, writers: int, seconds: float) -> float:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, checkpoint_dir, seconds, start, out))
        for _ in range(writers)
    ]
    for proc in procs:
        proc.start()
    time.sleep(3)  # let every writer import Django before the clock starts
    start.set()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="docflow_audit_bench")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", default="1,4,8")
    parser.add_argument("--chain", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--checkpoint-every", type=int, default=100_000)
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

    _setup(url, checkpoint_dir)
    from audit.signing import private_key_text

    os.environ["DOCFLOW_AUDIT_SIGNING_KEY"] = private_key_text(
        Ed25519PrivateKey.generate()
    )
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    for writers in [int(n) for n in args.writers.split(",")]:
        rate = writers_run(url, checkpoint_dir, writers, args.seconds)
        print(f"append: {writers} writers: {rate:,.0f} events/s", flush=True)

    from audit.models import AuditChainHead
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
        if AuditChainHead.objects.get(pk=1).sequence >= next_checkpoint:
            audit_chain_checkpoint()
            next_checkpoint += args.checkpoint_every
    audit_chain_checkpoint()
    head = AuditChainHead.objects.get(pk=1).sequence
    print(f"chain: {head:,} events built in {time.monotonic() - started:.1f} s")

    started = time.monotonic()
    external = checkpoints_trusted([Path(checkpoint_dir)])
    from audit.selectors import audit_chain_verify

    verdict = audit_chain_verify(external=external)
    elapsed = time.monotonic() - started
    print(
        f"verify: {verdict.checked:,} events against {len(external)} external "
        f"checkpoints: {'OK' if verdict.ok else 'BROKEN'} in {elapsed:.1f} s"
    )
    if not verdict.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
