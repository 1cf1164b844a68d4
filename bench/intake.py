"""Intake throughput: POST documents concurrently to docflow under gunicorn.

Sets up a dedicated PostgreSQL database, migrates it, creates a sending organisation
and an API key, starts gunicorn with production settings (DEBUG off, generated
secrets, a temporary payload directory), warms up, then posts ``--requests``
documents with ``--concurrency`` client threads, each with its own Idempotency-Key.

Prints submissions/s, latency percentiles, errors and the peak RSS of the gunicorn
process tree, checks every response was 201 and that the database holds exactly one
document, one payload version and one audit event per accepted submission, and
exits non-zero if anything failed. Run ``python bench/intake.py --help``.

With ``--via-nginx`` the client posts over HTTPS to nginx on loopback, rendered from
the production site template (deploy/nginx, deploy.nginx) with a certificate from a
test CA the client verifies, in front of the same gunicorn; nginx's CPU is reported.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Python puts this script's folder first on the path, where a sibling script named
# like a standard-library module (bench/queue.py) would shadow it for psycopg.
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.nginx import Site, Upstream, wait_listening, write_standalone  # noqa: E402
from deploy.tls import make_loopback_certificates  # noqa: E402
from tests.samples import VALID_NHS_NUMBER, pdf_bytes  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/docflow_bench"
TARGET_RPS = 150.0
TARGET_P99_MS = 250.0

# Runs inside the project's environment (Django configured from the same env vars
# gunicorn gets) and prints the raw key of a fresh API key as JSON.
SETUP_SCRIPT = """
import json, sys, uuid
import django
django.setup()
from django.contrib.auth import get_user_model
from docflow.models import ApiKey, SendingOrganisation

organisation, _ = SendingOrganisation.objects.get_or_create(
    ods_code="RBENCH", defaults={"name": "Benchmark Hospitals NHS Trust"}
)
user = get_user_model().objects.create(
    username=f"svc-bench-{uuid.uuid4().hex[:12]}", is_active=True
)
api_key, raw = ApiKey.objects.create_key(
    name="bench", sending_organisation=organisation, user=user
)
json.dump({"raw": raw, "prefix": api_key.prefix}, sys.stdout)
"""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark POST /api/v1/documents under gunicorn on PostgreSQL. "
            f"Target: >= {TARGET_RPS:.0f} submissions/s of a 100 KB PDF with "
            f"p99 < {TARGET_P99_MS:.0f} ms."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "-n", "--requests", type=int, default=3000, help="measured submissions"
    )
    parser.add_argument(
        "-c", "--concurrency", type=int, default=16, help="client threads"
    )
    parser.add_argument(
        "--warmup", type=int, default=200, help="unmeasured submissions first"
    )
    parser.add_argument(
        "--payload-kb", type=int, default=100, help="size of the PDF in KiB"
    )
    parser.add_argument(
        "--mode",
        choices=("json", "multipart"),
        default="json",
        help="JSON with base64 content, or a multipart file upload",
    )
    # Measured on 2 cores: sync workers beat gthread (threads contend for the GIL
    # on CPU-bound requests), and 2 x cores + 1 of them keep both cores busy.
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * cores + 1,
        help="gunicorn worker processes",
    )
    parser.add_argument(
        "--worker-class",
        choices=("sync", "gthread"),
        default="sync",
        help="gunicorn worker class",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="threads per worker (gthread only)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to use (created if missing; env BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="drop and recreate the database first"
    )
    parser.add_argument(
        "--payload-store",
        choices=("database", "filesystem"),
        default=None,
        help="DOCFLOW_PAYLOAD_STORE for the server (default: the settings' default, "
        "database on PostgreSQL)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port for gunicorn (0: pick a free one)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="per-request timeout, seconds"
    )
    parser.add_argument(
        "--via-nginx",
        action="store_true",
        help="go through nginx terminating TLS (the rendered deploy/nginx site)",
    )
    parser.add_argument(
        "--nginx-port", type=int, default=0, help="nginx's HTTPS port (0: free one)"
    )
    parser.add_argument(
        "--enforce-target",
        action="store_true",
        help="also exit non-zero (3) when the throughput or p99 target is missed",
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.workers < 1:
        parser.error("--requests, --concurrency and --workers must be positive")
    if args.threads < 1 or args.warmup < 0 or args.payload_kb < 1:
        parser.error("--threads and --payload-kb must be positive, --warmup >= 0")
    return args


# --- database -----------------------------------------------------------------


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def ensure_database(url: str, *, fresh: bool) -> str:
    """Create the benchmark database if missing (drop it first with ``fresh``)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("--database-url must name a database")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if fresh:
            log(f"dropping database {name}")
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            log(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    return f"PostgreSQL {version} (synchronous_commit={sync_commit})"


@dataclass(frozen=True)
class StoredCounts:
    documents: int
    payload_versions: int
    audit_events: int
    chain_gaps: int
    blob_rows: int = 0


def stored_counts(url: str, *, source_system: str) -> StoredCounts:
    """What the database holds for this run's API key; whether the chain is whole."""
    with psycopg.connect(url) as conn:
        documents = conn.execute(
            "SELECT count(*) FROM docflow_document WHERE source_system = %s",
            (source_system,),
        ).fetchone()[0]
        versions = conn.execute(
            "SELECT count(*) FROM docflow_payloadversion v "
            "JOIN docflow_document d ON d.id = v.document_id "
            "WHERE d.source_system = %s",
            (source_system,),
        ).fetchone()[0]
        events = conn.execute(
            "SELECT count(*) FROM audit_auditevent e "
            "JOIN docflow_document d ON e.target_id = d.public_id::text "
            "WHERE e.target_type = 'document' AND e.action = 'document.submitted' "
            "AND d.source_system = %s",
            (source_system,),
        ).fetchone()[0]
        blob_rows = conn.execute(
            "SELECT count(*) FROM docflow_payloadblob b "
            "JOIN docflow_payloadversion v ON v.storage_name = b.name "
            "JOIN docflow_document d ON d.id = v.document_id "
            "WHERE d.source_system = %s",
            (source_system,),
        ).fetchone()[0]
        # Sealed events only: with deferred sealing, events not yet chained have
        # no sequence (the sealer numbers them in commit order).
        low, high, total = conn.execute(
            "SELECT min(sequence), max(sequence), count(sequence) FROM audit_auditevent"
        ).fetchone()
    gaps = 0 if not total else (high - low + 1) - total
    return StoredCounts(documents, versions, events, gaps, blob_rows)


# --- server -------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1: any the system gives, or, with
    ``BENCH_PORTS=low-high`` set, the first free one in that range."""
    spec = os.environ.get("BENCH_PORTS", "")
    if spec:
        low, high = (int(part) for part in spec.split("-"))
        for port in range(low, high + 1):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in BENCH_PORTS={spec}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_payload_key_spec() -> str:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return f"bench{secrets.token_hex(3)}:{key}"


def server_env(*, database_url: str, payload_dir: Path, var_dir: Path) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="docflow.settings",
        DATABASE_URL=database_url,
        DJANGO_DEBUG="0",
        # The bench's patients are of the test range, refused by default in production.
        DOCFLOW_ALLOW_TEST_NHS_NUMBERS="1",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DOCFLOW_PAYLOAD_KEYS=new_payload_key_spec(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # Behind nginx (--via-nginx), which says the request came over HTTPS.
        DOCFLOW_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
        # Plain HTTP on loopback: production settings would redirect it to HTTPS.
        DOCFLOW_SSL_REDIRECT="0",
        # The bench measures intake itself: no rate limit, no backpressure.
        DOCFLOW_API_RATE_PER_KEY="",
        DOCFLOW_API_RATE_PER_SOURCE="",
        DOCFLOW_INTAKE_BACKPRESSURE_DEPTH="0",
        DOCFLOW_PAYLOAD_DIR=str(payload_dir),
        DOCFLOW_VAR_DIR=str(var_dir),
        CONN_MAX_AGE=env.get("CONN_MAX_AGE", "600"),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_SECRET_KEY_FILE", None)
    env.pop("DOCFLOW_PAYLOAD_KEYS_FILE", None)
    return env


def run_checked(command: list[str], *, env: dict, what: str) -> str:
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"{what} failed (exit {result.returncode})")
    return result.stdout


class Gunicorn:
    """A gunicorn process group we start, watch and stop."""

    def __init__(self, args: argparse.Namespace, *, env: dict, log_path: Path):
        self.port = args.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "docflow.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--backlog",
            "2048",
            "--timeout",
            "60",
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
            "--worker-tmp-dir",
            "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir(),
        ]
        if args.worker_class == "gthread":
            command += ["--threads", str(args.threads)]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, *, workers: int, timeout: float = 60.0) -> None:
        """Wait until every worker has booted and the app answers HTTP."""
        deadline = time.monotonic() + timeout
        master = psutil.Process(self.process.pid)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.fail(f"gunicorn exited with {self.process.returncode}")
            try:
                booted = len(master.children()) >= workers
                answer = httpx.get(f"{self.url}/api/v1/documents", timeout=2)
            except (httpx.HTTPError, psutil.Error):
                booted = False
            else:
                if booted and answer.status_code in (401, 403):
                    return
            time.sleep(0.2)
        self.fail("gunicorn did not become ready")

    def fail(self, message: str) -> None:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-4000:]
        sys.stderr.write(tail)
        raise SystemExit(message)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class TreeSampler(threading.Thread):
    """Samples the summed RSS and CPU time of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.peak_processes = 0
        self.final_pss: int | None = None
        self._cpu: dict[int, float] = {}
        self._processes: list[psutil.Process] = []
        self._listed_at = 0.0
        self._stop_event = threading.Event()

    def _tree(self) -> list[psutil.Process]:
        # Listing descendants walks /proc; once a second is plenty (and cheap).
        now = time.monotonic()
        if now - self._listed_at > 1.0:
            with contextlib.suppress(psutil.Error):
                self._processes = [self.root, *self.root.children(recursive=True)]
            self._listed_at = now
        return self._processes

    def sample(self) -> None:
        processes = self._tree()
        total = 0
        for process in processes:
            try:
                with process.oneshot():
                    total += process.memory_info().rss
                    times = process.cpu_times()
                    self._cpu[process.pid] = times.user + times.system
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, total)
        self.peak_processes = max(self.peak_processes, len(processes))

    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self._listed_at = 0.0
        self.sample()
        # RSS counts pages the workers share with the master once per process;
        # PSS splits them, so its sum is what the tree really holds (read once:
        # it walks every mapping).
        total = 0
        for process in self._tree():
            try:
                total += process.memory_full_info().pss
            except (psutil.Error, AttributeError):
                return
        self.final_pss = total


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every process and the kernel)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def postgres_cpu_seconds(database: str) -> float | None:
    """CPU used so far by our database's sessions and the server's own processes.

    Sessions on other databases (a test run next door, say) are left out; None when
    no PostgreSQL process is visible (a remote server).
    """
    total, seen = 0.0, False
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = process.info
        if info["name"] not in ("postgres", "postmaster") or not info["cpu_times"]:
            continue
        # A client backend's title is "postgres: <user> <database> <host>(<port>) ..."
        title = " ".join(info["cmdline"] or ())
        is_session = "(" in title or "[local]" in title
        if is_session and f" {database} " not in title:
            continue
        total += info["cpu_times"].user + info["cpu_times"].system
        seen = True
    return total if seen else None


class Edge:
    """nginx terminating TLS in front of the bench's gunicorn, rendered from the
    production site template into its own prefix (deploy.nginx)."""

    def __init__(self, args: argparse.Namespace, *, upstream_port: int) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="docflow-bench-nginx-"))
        self.port = args.nginx_port or free_port()
        certs = make_loopback_certificates(self.prefix / "tls")
        redirect_port = self.port + 1 if args.nginx_port else free_port()
        self.verify = ssl.create_default_context(cafile=str(certs.ca))
        self.url = f"https://localhost:{self.port}"
        standalone = write_standalone(
            self.prefix,
            Site(
                upstreams=[Upstream(f"127.0.0.1:{upstream_port}")],
                certificate=certs.certificate,
                certificate_key=certs.key,
                server_name="localhost",
                listen=f"127.0.0.1:{self.port}",
                http_listen=f"127.0.0.1:{redirect_port}",
            ),
        )
        self.log_path = self.prefix / "nginx.out"
        self.process = standalone.start(log_path=self.log_path)

    def wait_ready(self) -> str:
        """Wait until nginx answers through to gunicorn; the TLS version in use."""
        wait_listening("127.0.0.1", self.port, process=self.process)
        with httpx.Client(verify=self.verify, timeout=10) as client:
            answer = client.get(f"{self.url}/api/v1/documents")
            if answer.status_code not in (401, 403):
                raise SystemExit(f"nginx answered {answer.status_code}: {answer.text}")
            stream = answer.extensions["network_stream"]
            return stream.get_extra_info("ssl_object").version()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        shutil.rmtree(self.prefix, ignore_errors=True)


# --- load ---------------------------------------------------------------------


def document_metadata(reference: str) -> dict:
    return {
        "nhs_number": VALID_NHS_NUMBER,
        "patient_family_name": "Benchpatient",
        "patient_given_names": "Alex",
        "patient_birth_date": "1950-03-01",
        "document_type": "discharge_summary",
        "description": "Discharge summary",
        "event_date": "2024-01-15",
        "destination_ods_code": "A81001",
        "source_reference": reference,
        "file_name": "summary.pdf",
    }


REFERENCE_MARK = "@@REFERENCE@@"


class RequestBuilder:
    """Encodes the body once; each request only splices in its own reference."""

    def __init__(self, *, mode: str, content: bytes) -> None:
        self.mode = mode
        if mode == "json":
            body = dict(document_metadata(REFERENCE_MARK))
            body["content"] = base64.b64encode(content).decode("ascii")
            encoded = json.dumps(body).encode()
            self.content_type = "application/json"
        else:
            boundary = f"bench{uuid.uuid4().hex}"
            chunks = []
            for name, value in document_metadata(REFERENCE_MARK).items():
                chunks.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                    f"\r\n\r\n{value}\r\n".encode()
                )
            file_head = (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                'name="file"; filename="summary.pdf"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            )
            chunks.append(
                file_head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
            )
            encoded = b"".join(chunks)
            self.content_type = f"multipart/form-data; boundary={boundary}"
        self.head, _, self.tail = encoded.partition(REFERENCE_MARK.encode())
        self.size = len(encoded)

    def body(self, reference: str) -> bytes:
        return self.head + reference.encode() + self.tail


@dataclass
class LoadResult:
    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def errors(self) -> int:
        return sum(self.failures.values())


def run_load(
    *,
    url: str,
    raw_key: str,
    builder: RequestBuilder,
    total: int,
    concurrency: int,
    timeout: float,
    run_id: str,
    label: str,
    progress: bool,
    verify: ssl.SSLContext | bool = True,
) -> LoadResult:
    """Post ``total`` documents from ``concurrency`` threads sharing one client."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(total))
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    client = httpx.Client(
        base_url=url,
        verify=verify,
        limits=limits,
        timeout=timeout,
        headers={
            "Authorization": f"Api-Key {raw_key}",
            "Content-Type": builder.content_type,
        },
    )

    def next_index() -> int | None:
        with lock:
            return next(counter, None)

    def worker() -> None:
        latencies: list[float] = []
        while (index := next_index()) is not None:
            reference = f"{run_id}-{label}-{index:06d}"
            started = time.perf_counter()
            try:
                response = client.post(
                    "/api/v1/documents",
                    content=builder.body(reference),
                    headers={"Idempotency-Key": reference},
                )
            except httpx.HTTPError as exc:
                with lock:
                    result.completed += 1
                    result.failures[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            with lock:
                result.completed += 1
                result.statuses[response.status_code] += 1
                if response.status_code != 201:
                    result.failures[f"HTTP {response.status_code}"] += 1
                    if result.failures[f"HTTP {response.status_code}"] <= 3:
                        log(f"HTTP {response.status_code}: {response.text[:300]}")
        with lock:
            result.latencies.extend(latencies)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=2.0)
            if thread.is_alive():
                break
        if progress:
            elapsed = time.perf_counter() - started
            log(
                f"{label}: {result.completed}/{total} done, "
                f"{result.completed / elapsed:.0f}/s, {result.errors} errors, "
                f"{elapsed:.1f} s"
            )
    result.elapsed = time.perf_counter() - started
    client.close()
    return result


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Measured:
    """The measured phase: its load result and what each party spent on it."""

    load: LoadResult
    warmup: LoadResult
    peak_rss: int
    final_pss: int | None
    processes: int
    gunicorn_cpu: float
    nginx_cpu: float | None
    postgres_cpu: float | None
    client_cpu: float
    busy_cpu: float


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    args: argparse.Namespace,
    *,
    gunicorn: Gunicorn,
    nginx: subprocess.Popen | None = None,
    **common,
) -> Measured:
    """Warm up, then post the measured submissions while sampling CPU and memory."""
    database = urlsplit(args.database_url).path.lstrip("/")
    sampler = TreeSampler(gunicorn.process.pid)
    sampler.start()
    nginx_sampler = TreeSampler(nginx.pid, interval=0.5) if nginx else None
    if nginx_sampler:
        nginx_sampler.start()
    warmup = LoadResult()
    if args.warmup:
        log(f"warming up with {args.warmup} submissions")
        warmup = run_load(total=args.warmup, label="warmup", progress=False, **common)
    log(f"posting {args.requests} documents, {args.concurrency} at a time")
    nginx_before = nginx_sampler.cpu_seconds() if nginx_sampler else 0.0
    before = (
        sampler.cpu_seconds(),
        postgres_cpu_seconds(database),
        client_cpu_seconds(),
        busy_cpu_seconds(),
    )
    load = run_load(total=args.requests, label="run", progress=True, **common)
    busy = busy_cpu_seconds() - before[3]
    client = client_cpu_seconds() - before[2]
    postgres_after = postgres_cpu_seconds(database)
    sampler.stop()
    if nginx_sampler:
        nginx_sampler.stop()
    return Measured(
        load=load,
        warmup=warmup,
        peak_rss=sampler.peak_rss,
        final_pss=sampler.final_pss,
        processes=sampler.peak_processes,
        gunicorn_cpu=sampler.cpu_seconds() - before[0],
        nginx_cpu=(
            nginx_sampler.cpu_seconds() - nginx_before if nginx_sampler else None
        ),
        postgres_cpu=(
            None
            if before[1] is None or postgres_after is None
            else postgres_after - before[1]
        ),
        client_cpu=client,
        busy_cpu=busy,
    )


def report(
    args: argparse.Namespace,
    *,
    measured: Measured,
    builder: RequestBuilder,
    content: bytes,
    db_description: str,
    counts: StoredCounts,
    blobs: int,
) -> tuple[list[str], bool, bool]:
    """The printed summary, whether everything was stored, and whether we hit target."""
    load = measured.load
    accepted = measured.warmup.statuses[201] + load.statuses[201]
    ms = sorted(value * 1000 for value in load.latencies)
    rate = load.statuses[201] / load.elapsed if load.elapsed else 0.0
    p50, p95, p99 = (percentile(ms, f) for f in (0.50, 0.95, 0.99))
    cores = os.cpu_count() or 1
    per_request = 1000 / args.requests
    accounted = measured.gunicorn_cpu + measured.client_cpu
    accounted += (measured.postgres_cpu or 0.0) + (measured.nginx_cpu or 0.0)
    nginx = (
        ""
        if measured.nginx_cpu is None
        else f"nginx {measured.nginx_cpu * per_request:.1f}, "
    )
    postgres = (
        "n/a"
        if measured.postgres_cpu is None
        else f"{measured.postgres_cpu * per_request:.1f}"
    )
    workers = f"{args.workers} x {args.worker_class}"
    if args.worker_class == "gthread":
        workers += f", {args.threads} threads each"
    stored_ok = (
        counts.documents
        == counts.payload_versions
        == counts.audit_events
        == blobs
        == accepted
        and counts.chain_gaps == 0
    )
    met = rate >= TARGET_RPS and p99 < TARGET_P99_MS
    errors = f"{load.errors}" + (f" {dict(load.failures)}" if load.errors else "")
    if measured.warmup.errors:
        errors += f"; warm-up {dict(measured.warmup.failures)}"
    lines = [
        "docflow intake benchmark",
        f"  gunicorn       {workers}, DEBUG off",
        "  entrance       "
        + (
            f"nginx (deploy/nginx site), {args.tls_version} verified against a test CA"
            if args.via_nginx
            else "gunicorn directly, plain HTTP"
        ),
        f"  client         httpx, {args.concurrency} concurrent, same machine "
        f"({cores} cores)",
        f"  request        {args.mode}, PDF {len(content) / 1024:.0f} KiB "
        f"(body {builder.size / 1024:.0f} KiB)",
        f"  database       {db_description}, {redact(args.database_url)}",
        f"  payload store  {args.payload_store or 'default (database on PostgreSQL)'}",
        f"  submissions    {args.requests} in {load.elapsed:.2f} s "
        f"(after {args.warmup} warm-up)",
        f"  throughput     {rate:.1f} submissions/s",
        f"  latency ms     p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  "
        f"max {ms[-1] if ms else float('nan'):.1f}",
        f"  errors         {errors}",
        f"  peak RSS       {measured.peak_rss / 2**20:.0f} MiB "
        f"(sum over gunicorn master + workers, {measured.processes} processes)"
        + (
            f"; PSS after the run {measured.final_pss / 2**20:.0f} MiB"
            if measured.final_pss is not None
            else ""
        ),
        f"  CPU ms/request gunicorn {measured.gunicorn_cpu * per_request:.1f}, "
        f"{nginx}postgres {postgres}, client {measured.client_cpu * per_request:.1f}, "
        f"rest {max(0.0, measured.busy_cpu - accounted) * per_request:.1f} "
        f"(machine {100 * measured.busy_cpu / load.elapsed / cores:.0f}% busy)",
        f"  stored         {counts.documents} documents, {counts.payload_versions} "
        f"payload versions, {counts.audit_events} audit events, {blobs} blobs for "
        f"{accepted} accepted, audit chain gaps {counts.chain_gaps}: "
        + ("OK" if stored_ok else "MISMATCH"),
        "  load average   "
        + " ".join(f"{value:.2f}" for value in os.getloadavg())
        + " (1, 5, 15 min, at the end)",
        f"  target         >= {TARGET_RPS:.0f}/s and p99 < {TARGET_P99_MS:.0f} ms: "
        + ("met" if met else "NOT met"),
    ]
    return lines, stored_ok, met


# --- main ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    content = pdf_bytes("Benchmark discharge summary", pad_to=args.payload_kb * 1024)
    builder = RequestBuilder(mode=args.mode, content=content)
    db_description = ensure_database(args.database_url, fresh=args.fresh)
    workdir = Path(tempfile.mkdtemp(prefix="docflow-bench-"))
    payload_dir = workdir / "payloads"
    payload_dir.mkdir()
    env = server_env(
        database_url=args.database_url, payload_dir=payload_dir, var_dir=workdir
    )
    if args.payload_store:
        env["DOCFLOW_PAYLOAD_STORE"] = args.payload_store
    try:
        log("migrating")
        run_checked(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            env=env,
            what="migrate",
        )
        key = json.loads(
            run_checked([sys.executable, "-c", SETUP_SCRIPT], env=env, what="setup")
        )
        gunicorn = Gunicorn(args, env=env, log_path=workdir / "gunicorn.log")
        edge = None
        try:
            log(f"started gunicorn on {gunicorn.url}, waiting for its workers")
            gunicorn.wait_ready(workers=args.workers)
            url, verify = gunicorn.url, True
            if args.via_nginx:
                edge = Edge(args, upstream_port=gunicorn.port)
                args.tls_version = edge.wait_ready()
                url, verify = edge.url, edge.verify
                log(f"nginx on {edge.url} ({args.tls_version}) in front of it")
            measured = measure(
                args,
                gunicorn=gunicorn,
                nginx=edge.process if edge else None,
                url=url,
                verify=verify,
                raw_key=key["raw"],
                builder=builder,
                concurrency=args.concurrency,
                timeout=args.timeout,
                run_id=uuid.uuid4().hex[:8],
            )
        finally:
            if edge is not None:
                log("stopping nginx")
                edge.stop()
            log("stopping gunicorn")
            gunicorn.stop()
        counts = stored_counts(args.database_url, source_system=f"api:{key['prefix']}")
        # Files (filesystem store) plus rows (database store).
        blobs = counts.blob_rows + sum(
            1 for path in payload_dir.rglob("*") if path.is_file()
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    lines, stored_ok, met = report(
        args,
        measured=measured,
        builder=builder,
        content=content,
        db_description=db_description,
        counts=counts,
        blobs=blobs,
    )
    print("\n".join(lines), flush=True)
    if measured.load.errors or measured.warmup.errors or not stored_ok:
        return 1
    if args.enforce_target and not met:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
