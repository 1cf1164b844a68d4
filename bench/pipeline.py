"""Pipeline throughput: documents from intake to a final state against the simulator.

Sets up a dedicated PostgreSQL database (dropped and recreated each run), starts the
Connect simulator (accept behaviour, no lifecycle delay) and a django-q2 cluster
(``manage.py qcluster``), then submits ``--documents`` documents through the real
intake service (``docflow.services.document_submit``, the code the API calls) from
``--intake-processes`` processes while the cluster prepares, sends and tracks them.
The clock runs from the first submission until the last document is accepted.

Then, in the same run, a baseline: one bare loop (psycopg and httpx, no Django ORM,
no django-q) makes the same HTTP calls and equivalent row writes for as many
documents, and the ratio framework/baseline is printed.

Prints documents/s, posts/s, polls/s (changes-feed reads and status GETs), the
queue depth every 2 s and where the CPU went; checks that the simulator holds
exactly one document per idempotency key and that every document was accepted, and
exits non-zero if not. Run ``python bench/pipeline.py --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py shares its name with the standard library's queue module, which
# psycopg and django-q import: keep this folder off the front of the path.
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.append(str(BENCH_DIR))

import argparse  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

# bench/intake.py shares its name with the intake app: load it under another name.
_intake_spec = importlib.util.spec_from_file_location(
    "bench_intake", BENCH_DIR / "intake.py"
)
bench_intake = importlib.util.module_from_spec(_intake_spec)
sys.modules["bench_intake"] = bench_intake
_intake_spec.loader.exec_module(bench_intake)
ROOT = bench_intake.ROOT
TreeSampler = bench_intake.TreeSampler
busy_cpu_seconds = bench_intake.busy_cpu_seconds
free_port = bench_intake.free_port
new_payload_key_spec = bench_intake.new_payload_key_spec
postgres_cpu_seconds = bench_intake.postgres_cpu_seconds
redact = bench_intake.redact
run_checked = bench_intake.run_checked
from tests.samples import VALID_NHS_NUMBER, pdf_bytes  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/docflow_bench_pipeline"
TARGET_DOCUMENTS_PER_SECOND = 100.0
TARGET_RATIO = 0.3
SENDER_ODS = "RBENCH"
CLIENT_ID = "client-RBENCH"
DESTINATION = "A81001"

SETUP_SCRIPT = f"""
import django
django.setup()
from docflow.models import Organisation, SendingOrganisation

SendingOrganisation.objects.update_or_create(
    ods_code="{SENDER_ODS}",
    defaults={{
        "name": "Benchmark Hospitals NHS Trust",
        "connect_client_id": "{CLIENT_ID}",
        "connect_secret_ref": "CONNECT_SECRET_RBENCH",
    }},
)
Organisation.objects.update_or_create(
    ods_code="{DESTINATION}",
    defaults={{"name": "Riverside Surgery", "endpoint_type": "docman10"}},
)
"""

# One intake process: submits documents [first, last) through document_submit once
# the parent says "go", pacing itself to --rate if given. Process 0 also queues the
# tracker once the first document is in (the minute schedule would start it late).
INTAKE_SCRIPT = """
import sys, time
import django
django.setup()
from django_q.tasks import async_task
from docflow.models import SendingOrganisation
from docflow.services import DocumentSubmission, document_submit
import datetime

from docflow.models import Document

first, last, rate, run_id, kick, waiting_limit = sys.argv[1:7]
first, last, rate, kick = int(first), int(last), float(rate), kick == "1"
waiting_limit = int(waiting_limit)
content = open(sys.argv[7], "rb").read()
organisation = SendingOrganisation.objects.get(ods_code="RBENCH")
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
for index in range(first, last):
    if rate:
        due = started + (index - first) / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    if waiting_limit and index % 50 == 0:
        # Closed loop: wait while too many documents wait for their first post.
        while Document.objects.filter(
            status__in=("submitted", "ready", "sending")
        ).count() > waiting_limit:
            time.sleep(0.1)
    document, created = document_submit(
        sending_organisation=organisation,
        source_system="bench",
        idempotency_key=f"{run_id}-{index:06d}",
        submission=DocumentSubmission(
            nhs_number="NHS_NUMBER",
            patient_family_name="Benchpatient",
            patient_given_names="Alex",
            patient_birth_date=datetime.date(1950, 3, 1),
            document_type="discharge_summary",
            description="Discharge summary",
            event_date=datetime.date(2024, 1, 15),
            destination_ods_code="DESTINATION",
            content=content,
            declared_extension="pdf",
            source_reference=f"{run_id}-{index:06d}",
        ),
    )
    assert created
    if kick and index == first:
        async_task("transmissions.tasks.track")
print(f"done {last - first} {time.perf_counter() - started:.3f}", flush=True)
""".replace("NHS_NUMBER", VALID_NHS_NUMBER).replace("DESTINATION", DESTINATION)

REQUEST_LINE = re.compile(r'"(GET|POST|PUT) (/[^ ?"]*)(\?[^ "]*)? HTTP')
# werkzeug colours some request lines for terminals, even into a file.
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark the transmission pipeline (intake -> prepare -> send -> "
            "track -> accepted) on PostgreSQL against the Connect simulator, and a "
            f"bare baseline. Target: >= {TARGET_DOCUMENTS_PER_SECOND:.0f} "
            f"documents/s end to end and framework/baseline >= {TARGET_RATIO}."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-n", "--documents", type=int, default=10_000)
    parser.add_argument(
        "--payload-kb", type=int, default=20, help="size of the PDF in KiB"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="qcluster workers (Q_WORKERS)"
    )
    parser.add_argument(
        "--worker-nodes",
        type=int,
        nargs="+",
        default=[1],
        metavar="N",
        help="qcluster processes run as separate nodes (own var directory, own "
        "process group), each with --workers workers; several values (e.g. "
        "--worker-nodes 1 2) run the pipeline once for each, on a fresh database",
    )
    parser.add_argument(
        "--intake-processes", type=int, default=1, help="processes submitting"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="submissions/s offered in total (0: as fast as intake goes)",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=100,
        help="intake pauses while more documents than this wait to be posted "
        "(closed loop; 0: never)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to use, dropped and recreated "
        "(env BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="give up after, seconds"
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="only the framework run"
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temporary directory with the process logs",
    )
    parser.add_argument(
        "--enforce-target",
        action="store_true",
        help="also exit non-zero (3) when a target is missed",
    )
    args = parser.parse_args(argv)
    if args.documents < 1 or args.workers < 1 or args.intake_processes < 1:
        parser.error("--documents, --workers and --intake-processes must be >= 1")
    if min(args.worker_nodes) < 1:
        parser.error("--worker-nodes must be >= 1")
    return args


# --- database -----------------------------------------------------------------


def recreate_database(url: str) -> str:
    """Drop and create the benchmark database: every run starts empty."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("--database-url must name a database")
    maintenance = parts._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    return f"PostgreSQL {version.split()[0]} (synchronous_commit={sync_commit})"


STATES = ("submitted", "ready", "sending", "received", "delivered", "accepted")


@dataclass
class Snapshot:
    at: float
    states: Counter
    queued: int
    requests: Counter

    def line(self) -> str:
        other = sum(n for s, n in self.states.items() if s not in STATES)
        states = " ".join(f"{s[:4]} {self.states.get(s, 0):5d}" for s in STATES)
        return (
            f"{self.at:6.1f} s  {states}  other {other:3d}  OrmQ {self.queued:5d}  "
            f"posts {self.requests['post']:5d}  feed {self.requests['feed']:4d}  "
            f"gets {self.requests['status']:4d}"
        )


POLL_SECONDS = 0.5


def database_snapshot(conn: psycopg.Connection) -> tuple[Counter, int]:
    states = Counter(
        dict(
            conn.execute(
                "SELECT status, count(*) FROM docflow_document GROUP BY status"
            ).fetchall()
        )
    )
    queued = conn.execute("SELECT count(*) FROM django_q_ormq").fetchone()[0]
    return states, queued


# --- processes ----------------------------------------------------------------


class RequestCounter:
    """Counts the simulator's requests from its access log (werkzeug, one line per
    request), reading only what was appended since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.counts: Counter = Counter()
        self._partial = b""

    def read(self) -> Counter:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = self._partial + handle.read()
            self.offset = handle.tell()
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            text = COLOUR.sub("", line.decode(errors="replace"))
            match = REQUEST_LINE.search(text)
            if match:
                self.counts[
                    classify(match.group(1), match.group(2), match.group(3))
                ] += 1
        return Counter(self.counts)


def classify(method: str, path: str, query: str | None) -> str:
    if path == "/api/documents":
        return "post" if method == "POST" else "find"
    if path == "/api/documents/changes":
        return "feed"
    if path.startswith("/api/documents/"):
        return "status"
    if path == "/oauth2/token":
        return "token"
    if path.startswith("/api/organisations/"):
        return "directory"
    return "control"


class Child:
    """A child process in its own session (so its whole group can be stopped)."""

    def __init__(self, args, *, env, log_path: Path, stdin=None, stdout=None):
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=stdout if stdout is not None else self._log,
            stderr=self._log,
            start_new_session=True,
            text=stdout is not None,
        )

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the leader (a qcluster stops its own workers), then SIGKILL
        to whatever of the group is left."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        self._log.close()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def write_scenario(path: Path, *, secret: str) -> None:
    path.write_text(
        json.dumps(
            {
                "time_multiplier": 1e9,
                "receive_to_deliver_seconds": 60,
                "deliver_to_final_seconds": 600,
                "seed": 1,
                "clients": [
                    {
                        "client_id": CLIENT_ID,
                        "client_secret": secret,
                        "sending_ods_code": SENDER_ODS,
                    }
                ],
                "organisations": [
                    {
                        "ods_code": DESTINATION,
                        "name": "Riverside Surgery",
                        "endpoint_type": "docman10",
                        "behaviour": "accept",
                    }
                ],
            }
        )
    )


def start_simulator(workdir: Path, *, env: dict, secret: str) -> tuple[Child, str]:
    scenario = workdir / "scenario.json"
    write_scenario(scenario, secret=secret)
    port = free_port()
    child = Child(
        [
            sys.executable,
            "manage.py",
            "connect_simulator",
            "--port",
            str(port),
            "--scenario",
            str(scenario),
            "--state",
            str(workdir / "simulator.sqlite3"),
        ],
        # INFO: werkzeug logs one line per request, which is how requests are counted.
        env={**env, "LOG_LEVEL": "INFO"},
        log_path=workdir / "simulator.log",
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise SystemExit(f"simulator exited:\n{child.tail()}")
        try:
            if httpx.get(f"{url}/_sim/health", timeout=1).is_success:
                return child, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    child.stop()
    raise SystemExit("the simulator did not start")


def simulator_stats(url: str) -> dict:
    return httpx.get(f"{url}/_sim/stats", timeout=30).json()


# --- framework run ------------------------------------------------------------


@dataclass
class FrameworkRun:
    documents: int
    worker_nodes: int
    node_cpu: list[float]
    elapsed: float
    intake_elapsed: float
    snapshots: list[Snapshot]
    requests: Counter
    final_states: Counter
    simulator: dict
    cpu: dict[str, float]
    busy_cpu: float
    timed_out: bool

    @property
    def rate(self) -> float:
        return self.documents / self.elapsed

    def per_second(self, *kinds: str) -> float:
        return sum(self.requests[k] for k in kinds) / self.elapsed

    @property
    def ok(self) -> bool:
        n = self.documents
        return (
            not self.timed_out
            and self.final_states.get("accepted", 0) == n
            and self.simulator["documents"] == self.simulator["distinct_keys"] == n
        )


def run_framework(
    args: argparse.Namespace,
    *,
    env: dict,
    workdir: Path,
    sim_url: str,
    sim_pid: int,
    counter: RequestCounter,
    worker_nodes: int,
) -> FrameworkRun:
    content_path = workdir / "content.pdf"
    content_path.write_bytes(
        pdf_bytes("Benchmark discharge summary", pad_to=args.payload_kb * 1024)
    )
    # Each worker node: its own qcluster process group and var directory; they
    # share only the database (the ORM broker's queue) and the simulator.
    clusters = []
    for number in range(1, worker_nodes + 1):
        node_dir = workdir / f"worker-node-{number}"
        node_dir.mkdir(exist_ok=True)
        clusters.append(
            Child(
                [sys.executable, "manage.py", "qcluster"],
                env={
                    **env,
                    "Q_WORKERS": str(args.workers),
                    "DOCFLOW_VAR_DIR": str(node_dir),
                },
                log_path=node_dir / "qcluster.log",
            )
        )
    run_id = uuid.uuid4().hex[:8]
    share = -(-args.documents // args.intake_processes)
    rate = args.rate / args.intake_processes if args.rate else 0.0
    intakes = []
    for number in range(args.intake_processes):
        first = number * share
        last = min(args.documents, first + share)
        intakes.append(
            Child(
                [
                    sys.executable,
                    "-c",
                    INTAKE_SCRIPT,
                    str(first),
                    str(last),
                    str(rate),
                    run_id,
                    "1" if number == 0 else "0",
                    str(args.max_waiting // args.intake_processes),
                    str(content_path),
                ],
                env=env,
                log_path=workdir / f"intake-{number}.log",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
    try:
        for intake in intakes:
            if intake.popen.stdout.readline().strip() != "ready":
                raise SystemExit(f"intake failed:\n{intake.tail()}")
        # Give the cluster time to boot so the clock measures work, not imports.
        time.sleep(3)
        for cluster in clusters:
            if cluster.popen.poll() is not None:
                raise SystemExit(f"qcluster exited:\n{cluster.tail()}")
        database = urlsplit(args.database_url).path.lstrip("/")
        samplers = [TreeSampler(cluster.popen.pid) for cluster in clusters]
        before_nodes = []
        for sampler in samplers:
            sampler.sample()
            before_nodes.append(sampler.cpu_seconds())  # booting is not the run's work
            sampler.start()
        intake_processes = [psutil.Process(i.popen.pid) for i in intakes]
        before_intake = sum(sum(p.cpu_times()[:2]) for p in intake_processes)
        sim_process = psutil.Process(sim_pid)
        before_sim = sum(sim_process.cpu_times()[:2])
        before_pg = postgres_cpu_seconds(database) or 0.0
        before_busy = busy_cpu_seconds()
        log(
            f"submitting {args.documents} documents from {len(intakes)} process(es)"
            + (f" at {args.rate:.0f}/s" if args.rate else "")
        )
        started = time.perf_counter()
        for intake in intakes:
            intake.popen.stdin.write("go\n")
            intake.popen.stdin.flush()
        snapshots: list[Snapshot] = []
        intake_cpu: dict[int, float] = {}
        intake_elapsed = 0.0
        timed_out = False
        next_print = 0.0
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            while True:
                now = time.perf_counter() - started
                states, queued = database_snapshot(conn)
                for process in intake_processes:
                    try:
                        times = process.cpu_times()
                        intake_cpu[process.pid] = times.user + times.system
                    except psutil.Error:
                        pass
                if not intake_elapsed and all(
                    i.popen.poll() is not None for i in intakes
                ):
                    intake_elapsed = now
                if states.get("accepted", 0) >= args.documents:
                    break
                if now >= next_print:
                    snapshot = Snapshot(now, states, queued, counter.read())
                    snapshots.append(snapshot)
                    log(snapshot.line())
                    next_print += 2.0
                if now > args.timeout:
                    timed_out = True
                    break
                for cluster in clusters:
                    if cluster.popen.poll() is not None:
                        raise SystemExit(f"qcluster exited:\n{cluster.tail()}")
                # Counting every document is work for PostgreSQL and this process:
                # looked at twice a second, the clock stops at most 0.5 s late.
                time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
        busy = busy_cpu_seconds() - before_busy
        pg = (postgres_cpu_seconds(database) or 0.0) - before_pg
        sim_cpu = sum(sim_process.cpu_times()[:2]) - before_sim
        for sampler in samplers:
            sampler.stop()
        node_cpu = [
            sampler.cpu_seconds() - before
            for sampler, before in zip(samplers, before_nodes, strict=True)
        ]
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            final_states, queued = database_snapshot(conn)
        snapshots.append(Snapshot(elapsed, final_states, queued, counter.read()))
        log(snapshots[-1].line())
        for intake in intakes:
            if timed_out:
                intake.stop()  # the run is reported as failed anyway
                continue
            intake.popen.communicate(timeout=60)
            if intake.popen.returncode != 0:
                raise SystemExit(f"intake failed:\n{intake.tail()}")
        return FrameworkRun(
            documents=args.documents,
            worker_nodes=worker_nodes,
            node_cpu=node_cpu,
            elapsed=elapsed,
            intake_elapsed=intake_elapsed or elapsed,
            snapshots=snapshots,
            requests=counter.read(),
            final_states=final_states,
            simulator=simulator_stats(sim_url),
            cpu={
                "qcluster": sum(node_cpu),
                "intake": sum(intake_cpu.values()) - before_intake,
                "simulator": sim_cpu,
                "postgres": pg,
            },
            busy_cpu=busy,
            timed_out=timed_out,
        )
    finally:
        for intake in intakes:
            intake.stop()
        for cluster in clusters:
            cluster.stop()


# --- baseline -----------------------------------------------------------------

BASELINE_SCHEMA = """
DROP SCHEMA IF EXISTS baseline CASCADE;
CREATE SCHEMA baseline;
CREATE TABLE baseline.document (
    id bigserial PRIMARY KEY,
    public_id uuid NOT NULL UNIQUE,
    idempotency_key text NOT NULL UNIQUE,
    nhs_number text NOT NULL,
    family_name text NOT NULL,
    birth_date date NOT NULL,
    description text NOT NULL,
    destination text NOT NULL,
    status text NOT NULL,
    status_changed_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON baseline.document (status, status_changed_at);
CREATE TABLE baseline.payload (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES baseline.document,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL,
    storage_name text NOT NULL UNIQUE
);
CREATE TABLE baseline.transmission (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES baseline.document,
    idempotency_key text NOT NULL UNIQUE,
    guid text NOT NULL DEFAULT '',
    state text NOT NULL,
    status_code integer,
    attempts integer NOT NULL DEFAULT 0,
    posted_at timestamptz
);
CREATE INDEX ON baseline.transmission (guid);
CREATE TABLE baseline.event (
    sequence bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    action text NOT NULL,
    target_id text NOT NULL,
    data jsonb NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
);
"""

STATUS_FOR_CODE = {4002: "received", 4003: "delivered", 4010: "accepted"}
ORDER = ["sending", "received", "delivered", "accepted"]


class Chain:
    """Audit-like rows: a sequence and a SHA-256 chain, kept in memory."""

    def __init__(self) -> None:
        self.sequence = 0
        self.last = "0" * 64

    def append(self, cur, action: str, target: str, data: dict) -> None:
        self.sequence += 1
        text = json.dumps(data, sort_keys=True)
        digest = hashlib.sha256(
            f"{self.sequence}|{action}|{target}|{text}|{self.last}".encode()
        ).hexdigest()
        cur.execute(
            "INSERT INTO baseline.event (sequence, action, target_id, data, "
            "prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s)",
            (self.sequence, action, target, text, self.last, digest),
        )
        self.last = digest


@dataclass
class BaselineRun:
    documents: int
    elapsed: float
    requests: Counter = field(default_factory=Counter)
    accepted: int = 0
    simulator: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.documents / self.elapsed

    @property
    def ok(self) -> bool:
        n = self.documents
        return (
            self.accepted == n
            and self.simulator.get("documents") == self.simulator.get("distinct_keys")
            and self.simulator.get("documents") == n
        )


def run_baseline(
    *, database_url: str, sim_url: str, secret: str, documents: int, content: bytes
) -> BaselineRun:
    """Intake, prepare, send and track in one loop: the same HTTP calls and the
    same kinds of row writes as the pipeline, with nothing in between."""
    httpx.post(f"{sim_url}/_sim/reset", timeout=30).raise_for_status()
    result = BaselineRun(documents=documents, elapsed=0.0)
    chain = Chain()
    run_id = uuid.uuid4().hex[:8]
    with psycopg.connect(database_url) as conn:
        conn.execute(BASELINE_SCHEMA)
        conn.commit()
        client = httpx.Client(base_url=sim_url, timeout=30)
        started = time.perf_counter()
        token = client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": secret,
            },
        ).json()["access_token"]
        result.requests["token"] += 1
        headers = {"Authorization": f"Bearer {token}"}
        by_guid: dict[str, tuple[int, str, str]] = {}
        cursor = ""
        last_read = time.perf_counter()

        def read_changes() -> None:
            nonlocal cursor
            while True:
                params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = client.get(
                    "/api/documents/changes", params=params, headers=headers
                ).json()
                result.requests["feed"] += 1
                changes = page["Changes"]
                with conn.cursor() as cur:
                    for change in changes:
                        target = by_guid.get(change["DocumentGuid"])
                        status = STATUS_FOR_CODE.get(change["StatusCode"])
                        if target is None or status is None:
                            continue
                        document_id, public_id, current = target
                        if ORDER.index(status) <= ORDER.index(current):
                            continue
                        cur.execute(
                            "UPDATE baseline.document SET status = %s, "
                            "status_changed_at = now() WHERE id = %s",
                            (status, document_id),
                        )
                        cur.execute(
                            "UPDATE baseline.transmission SET status_code = %s, "
                            "state = %s WHERE document_id = %s",
                            (
                                change["StatusCode"],
                                "final" if status == "accepted" else "posted",
                                document_id,
                            ),
                        )
                        chain.append(
                            cur,
                            f"document.mark_{status}",
                            public_id,
                            {"from": current, "to": status},
                        )
                        by_guid[change["DocumentGuid"]] = (
                            document_id,
                            public_id,
                            status,
                        )
                        if status == "accepted":
                            result.accepted += 1
                    cursor = page["NextCursor"]
                conn.commit()
                if len(changes) < 500:
                    return

        for index in range(documents):
            key = f"{run_id}-{index:06d}"
            public_id = str(uuid.uuid4())
            with conn.cursor() as cur:
                document_id = cur.execute(
                    "INSERT INTO baseline.document (public_id, idempotency_key, "
                    "nhs_number, family_name, birth_date, description, destination, "
                    "status, status_changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                    "'submitted', now()) RETURNING id",
                    (
                        public_id,
                        key,
                        VALID_NHS_NUMBER,
                        "Benchpatient",
                        "1950-03-01",
                        "Discharge summary",
                        DESTINATION,
                    ),
                ).fetchone()[0]
                digest = hashlib.sha256(content).hexdigest()
                cur.execute(
                    "INSERT INTO baseline.payload (document_id, sha256, size_bytes, "
                    "storage_name) VALUES (%s, %s, %s, %s)",
                    (document_id, digest, len(content), uuid.uuid4().hex),
                )
                chain.append(cur, "document.submitted", public_id, {"sha256": digest})
            conn.commit()
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE baseline.document SET status = 'ready', "
                    "status_changed_at = now() WHERE id = %s AND status = 'submitted'",
                    (document_id,),
                )
                chain.append(cur, "document.mark_prepared", public_id, {})
            conn.commit()
            transmission_key = f"bench-{uuid.uuid4()}"
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE baseline.document SET status = 'sending', "
                    "status_changed_at = now() WHERE id = %s AND status = 'ready'",
                    (document_id,),
                )
                transmission_id = cur.execute(
                    "INSERT INTO baseline.transmission (document_id, idempotency_key, "
                    "state, attempts) VALUES (%s, %s, 'pending', 1) RETURNING id",
                    (document_id, transmission_key),
                ).fetchone()[0]
                chain.append(cur, "document.claim_for_sending", public_id, {})
            conn.commit()
            body = {
                "CaptureSource": 2,
                "Sender": {"OdsCode": SENDER_ODS},
                "RecipientOdsCode": DESTINATION,
                "Patient": {
                    "NhsNumber": VALID_NHS_NUMBER,
                    "FamilyName": "Benchpatient",
                    "GivenNames": "Alex",
                    "BirthDate": "1950-03-01",
                },
                "Document": {
                    "FileExtension": "pdf",
                    "FileContent": base64.b64encode(content).decode("ascii"),
                    "FileHash": digest,
                    "Description": "Discharge summary",
                    "EventDate": "2024-01-15",
                },
                "ActionRequired": False,
                "MedicationChanged": False,
                "Urgent": False,
                "Revision": False,
                "Inpatient": False,
            }
            response = client.post(
                "/api/documents",
                json=body,
                headers={**headers, "Idempotency-Key": transmission_key},
            )
            result.requests["post"] += 1
            response.raise_for_status()
            guid = response.json()["DocumentGuid"]
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE baseline.transmission SET guid = %s, state = 'posted', "
                    "status_code = 4002, posted_at = now() WHERE id = %s",
                    (guid, transmission_id),
                )
                chain.append(cur, "transmission.posted", public_id, {"guid": guid})
                cur.execute(
                    "UPDATE baseline.document SET status = 'received', "
                    "status_changed_at = now() WHERE id = %s AND status = 'sending'",
                    (document_id,),
                )
                chain.append(cur, "document.mark_received", public_id, {})
            conn.commit()
            by_guid[guid] = (document_id, public_id, "received")
            # Track as the pipeline does: read the feed about once a second.
            if time.perf_counter() - last_read >= 1.0:
                read_changes()
                last_read = time.perf_counter()
        while result.accepted < documents:
            read_changes()
        result.elapsed = time.perf_counter() - started
        client.close()
    result.simulator = simulator_stats(sim_url)
    return result


# --- report -------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    *,
    framework: FrameworkRun,
    baseline: BaselineRun | None,
    db_description: str,
) -> tuple[list[str], bool]:
    n = framework.documents
    cores = os.cpu_count() or 1
    per_doc = 1000 / n
    cpu = framework.cpu
    accounted = sum(cpu.values())
    rest = max(0.0, framework.busy_cpu - accounted)
    stats = framework.simulator
    lines = [
        "docflow pipeline benchmark",
        f"  documents      {n} x PDF {args.payload_kb} KiB to {DESTINATION} (accept, "
        "no lifecycle delay)",
        f"  cluster        {framework.worker_nodes} qcluster node(s) x {args.workers} "
        f"workers, ORM broker; intake "
        f"{args.intake_processes} process(es)"
        + (f" at {args.rate:.0f}/s" if args.rate else "")
        + (
            f", pausing while > {args.max_waiting} wait to be posted"
            if args.max_waiting
            else ""
        ),
        f"  database       {db_description}, {redact(args.database_url)}",
        f"  end to end     {n} accepted in {framework.elapsed:.1f} s: "
        f"{framework.rate:.1f} documents/s (intake done after "
        f"{framework.intake_elapsed:.1f} s)",
        f"  HTTP           {framework.per_second('post'):.1f} posts/s, "
        f"{framework.per_second('feed', 'status'):.1f} polls/s "
        f"({framework.requests['feed']} changes-feed reads, "
        f"{framework.requests['status']} status GETs, "
        f"{framework.requests['find']} key look-ups, "
        f"{framework.requests['token']} tokens, "
        f"{framework.requests['directory']} directory look-ups)",
        f"  CPU ms/doc     qcluster {cpu['qcluster'] * per_doc:.1f}, intake "
        f"{cpu['intake'] * per_doc:.1f}, simulator {cpu['simulator'] * per_doc:.1f}, "
        f"postgres {cpu['postgres'] * per_doc:.1f}, rest {rest * per_doc:.1f} "
        f"(machine {100 * framework.busy_cpu / framework.elapsed / cores:.0f}% busy)",
        # What the run itself costs, whatever else the machine was doing.
        f"  capacity       {cores * 1000 / (accounted * per_doc):.1f} documents/s if "
        f"these {cores} cores did nothing else ({accounted * per_doc:.1f} CPU ms "
        "per document)",
        f"  simulator      {stats['documents']} documents, {stats['distinct_keys']} "
        f"distinct keys; accepted here {framework.final_states.get('accepted', 0)}: "
        + ("OK" if framework.ok else "MISMATCH"),
    ]
    met = framework.rate >= TARGET_DOCUMENTS_PER_SECOND
    if baseline is not None:
        ratio = framework.rate / baseline.rate
        lines += [
            f"  baseline       {n} in {baseline.elapsed:.1f} s: {baseline.rate:.1f} "
            f"documents/s ({baseline.requests['post']} posts, "
            f"{baseline.requests['feed']} changes-feed reads; simulator "
            f"{baseline.simulator.get('documents')} documents, "
            f"{baseline.simulator.get('distinct_keys')} keys, {baseline.accepted} "
            "accepted: " + ("OK" if baseline.ok else "MISMATCH") + ")",
            f"  ratio          framework/baseline {ratio:.2f}",
        ]
        met = met and ratio >= TARGET_RATIO
    lines.append(
        f"  target         >= {TARGET_DOCUMENTS_PER_SECOND:.0f} documents/s"
        + (f" and ratio >= {TARGET_RATIO}" if baseline is not None else "")
        + ": "
        + ("met" if met else "NOT met")
    )
    return lines, met


# --- main ---------------------------------------------------------------------


def stop_on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so the cluster, intake and simulator are stopped."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    db_description = recreate_database(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="docflow-pipeline-"))
    payload_dir = workdir / "payloads"
    payload_dir.mkdir()
    secret = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "docflow.settings",
        "DATABASE_URL": args.database_url,
        "DJANGO_DEBUG": "0",
        # The bench's patients are of the test range, refused by default in production.
        "DOCFLOW_ALLOW_TEST_NHS_NUMBERS": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DOCFLOW_PAYLOAD_KEYS": new_payload_key_spec(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DOCFLOW_PAYLOAD_DIR": str(payload_dir),
        "DOCFLOW_VAR_DIR": str(workdir),
        "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", "600"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "CONNECT_SECRET_RBENCH": secret,
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DJANGO_SECRET_KEY_FILE", "DOCFLOW_PAYLOAD_KEYS_FILE", "REDIS_URL"):
        env.pop(name, None)
    sim_url = ""
    simulator = None
    runs: list[FrameworkRun] = []
    baseline = None
    try:
        for index, worker_nodes in enumerate(args.worker_nodes):
            if index:
                # Every pipeline run starts from an empty database and simulator.
                db_description = recreate_database(args.database_url)
                httpx.post(f"{sim_url}/_sim/reset", timeout=30).raise_for_status()
            log(f"migrating {redact(args.database_url)} (work dir {workdir})")
            database_setup(env)
            if simulator is None:
                simulator, sim_url = start_simulator(workdir, env=env, secret=secret)
                env["DOCFLOW_CONNECT_BASE_URL"] = sim_url
            counter = RequestCounter(workdir / "simulator.log")
            counter.read()  # only this run's requests count
            counter.counts.clear()
            log(f"pipeline on {worker_nodes} worker node(s)")
            runs.append(
                run_framework(
                    args,
                    env=env,
                    workdir=workdir,
                    sim_url=sim_url,
                    sim_pid=simulator.popen.pid,
                    counter=counter,
                    worker_nodes=worker_nodes,
                )
            )
        if not args.skip_baseline:
            log(f"baseline: {args.documents} documents in one bare loop")
            baseline = run_baseline(
                database_url=args.database_url,
                sim_url=sim_url,
                secret=secret,
                documents=args.documents,
                content=(workdir / "content.pdf").read_bytes(),
            )
    finally:
        if simulator is not None:
            simulator.stop()
        if args.keep_workdir:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ok, all_met = True, True
    for number, framework in enumerate(runs):
        last = number == len(runs) - 1
        lines, met = report(
            args,
            framework=framework,
            baseline=baseline if last else None,
            db_description=db_description,
        )
        print("\n".join(lines), flush=True)
        ok = ok and framework.ok
        all_met = all_met and met
    if len(runs) > 1:
        print("\n".join(scaling_lines(runs)), flush=True)
    if not ok or (baseline is not None and not baseline.ok):
        return 1
    if args.enforce_target and not all_met:
        return 3
    return 0


def database_setup(env: dict) -> None:
    """Migrate the (empty) database, create the sender and the destination, and
    declare the engine's own schedules, as production does."""
    run_checked(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        env=env,
        what="migrate",
    )
    run_checked([sys.executable, "-c", SETUP_SCRIPT], env=env, what="setup")
    run_checked(
        [sys.executable, "manage.py", "setup_schedules"],
        env=env,
        what="setup_schedules",
    )


def scaling_lines(runs: list[FrameworkRun]) -> list[str]:
    """The runs side by side: documents/s, the ratio to the first, CPU per node.
    On one machine the nodes share its cores, so the ratio is bounded by CPU (see
    bench/README.md), not by how many nodes there are."""
    first = runs[0]
    cores = os.cpu_count() or 1
    lines = [f"worker nodes (same machine, {cores} cores, load {load_average()})"]
    for run in runs:
        per_doc = 1000 / run.documents
        nodes = ", ".join(f"{cpu * per_doc:.1f}" for cpu in run.node_cpu)
        lines.append(
            f"  {run.worker_nodes} node(s)      {run.rate:.1f} documents/s "
            f"(x{run.rate / first.rate:.2f} of {first.worker_nodes}), "
            f"qcluster CPU ms/doc per node [{nodes}], all processes "
            f"{sum(run.cpu.values()) * per_doc:.1f} ms/doc, machine "
            f"{100 * run.busy_cpu / run.elapsed / cores:.0f}% busy"
        )
    return lines


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
