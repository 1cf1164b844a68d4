"""The cluster rehearsal from start to finish: the options, the nodes started in
order, the traffic and the two kills, the wait for every document to settle, and
the report (text, or JSON with --json). Setting up, the processes, the traffic and
the reading of results are modules of their own."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.nginx import Site, Upstream, write_standalone
from deploy.tls import make_loopback_certificates
from operations.rehearsals.cluster import nodes, outcome
from operations.rehearsals.cluster.report import rehearsal_report, report_text
from operations.rehearsals.cluster.setup import (
    MLLP_APPLICATION,
    SENDER_ODS,
    SETUP_SCRIPT,
    common_env,
    database_drop,
    database_recreate,
    node_env,
    redis_empty,
    run_checked,
    scenario_write,
)
from operations.rehearsals.cluster.traffic import ApiLoad, MllpLoad

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/h4_rehearsal"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"
DEFAULT_BASE_PORT = 24100
# The web node and the worker node that are SIGKILLed, and when (share of the API
# documents answered by then).
KILLED_WEB, KILL_WEB_AT = "web-1", 0.3
KILLED_WORKER, KILL_WORKER_AT = "worker-1", 0.5


def log(message: str) -> None:
    print(f"[rehearsal] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cluster-rehearsal",
        description=(
            "Run docflow as a cluster on loopback (nginx+TLS, 2 web nodes, 2 worker "
            "nodes, Connect simulator, MLLP listener), drive documents through the "
            "API and MLLP while SIGKILLing one web node and one worker node, and "
            "report what became of them. Exit 0 when every check passed, 1 if not."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--documents", type=int, default=2000, help="in total")
    parser.add_argument(
        "--mllp-share", type=float, default=0.1, help="share sent over MLLP"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="API clients")
    parser.add_argument("--web-workers", type=int, default=2, help="per web node")
    parser.add_argument("--q-workers", type=int, default=2, help="per worker node")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("REHEARSAL_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database of its own: dropped and created (env "
        "REHEARSAL_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REHEARSAL_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis database of its own: emptied before and after (env "
        "REHEARSAL_REDIS_URL)",
    )
    parser.add_argument(
        "--base-port", type=int, default=DEFAULT_BASE_PORT, help="uses 6 from here"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds for documents to settle"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (logs) and the database afterwards",
    )
    parser.add_argument("--json", action="store_true", help="report as JSON")
    args = parser.parse_args(argv)
    if args.documents < 10:
        parser.error("--documents must be at least 10")
    return args


# --- the run -------------------------------------------------------------------


@dataclass
class Cluster:
    workdir: Path
    ca_path: Path | None = None
    web: list[nodes.Node] = field(default_factory=list)
    workers: list[nodes.Node] = field(default_factory=list)
    others: list[nodes.Node] = field(default_factory=list)

    @property
    def all(self) -> list[nodes.Node]:
        return [*self.web, *self.workers, *self.others]

    def node(self, name: str) -> nodes.Node:
        return next(n for n in self.all if n.name == name)

    def stop(self) -> None:
        for node in reversed(self.all):
            node.stop()


def cluster_start(args: argparse.Namespace, env: dict, cluster: Cluster) -> None:
    """Start every node into ``cluster`` (so a failure half-way stops what did
    start) and wait until each is ready."""
    workdir = cluster.workdir
    base = args.base_port
    simulator_dir = workdir / "simulator"
    simulator_dir.mkdir()
    scenario = simulator_dir / "scenario.json"
    scenario_write(scenario, secret=env["CONNECT_SECRET_RREH"])
    simulator = nodes.simulator_node(
        env=node_env(env, simulator_dir),
        directory=simulator_dir,
        port=base + 3,
        scenario=scenario,
    )
    cluster.others.append(simulator)
    simulator.start()
    simulator.wait_until(lambda: nodes.simulator_ready(simulator))
    env["DOCFLOW_CONNECT_BASE_URL"] = f"http://127.0.0.1:{base + 3}"
    for number in (1, 2):
        directory = workdir / f"web-{number}"
        cluster.web.append(
            nodes.web_node(
                f"web-{number}",
                env=node_env(env, directory),
                directory=directory,
                port=base + number,
                workers=args.web_workers,
            )
        )
        directory = workdir / f"worker-{number}"
        cluster.workers.append(
            nodes.worker_node(
                f"worker-{number}",
                env=node_env(env, directory),
                directory=directory,
                workers=args.q_workers,
            )
        )
    mllp_dir = workdir / "mllp"
    mllp = nodes.mllp_node(
        env=node_env(env, mllp_dir), directory=mllp_dir, port=base + 4
    )
    cluster.others.append(mllp)
    # Under nginx's prefix, which deploy.nginx hands to the user nginx runs as.
    certificate = make_loopback_certificates(workdir / "nginx" / "tls")
    standalone = write_standalone(
        workdir / "nginx",
        Site(
            upstreams=[
                Upstream(f"127.0.0.1:{node.port}", max_fails=1, fail_timeout_seconds=5)
                for node in cluster.web
            ],
            certificate=certificate.certificate,
            certificate_key=certificate.key,
            server_name="127.0.0.1",
            listen=f"127.0.0.1:{base}",
            http_listen=f"127.0.0.1:{base + 5}",
        ),
    )
    nginx = nodes.nginx_node(standalone=standalone, port=base)
    cluster.others.append(nginx)
    for node in [*cluster.web, *cluster.workers, mllp, nginx]:
        node.start()
    for node in cluster.web:
        node.wait_until(lambda node=node: nodes.web_ready(node))
    for node in cluster.workers:
        node.wait_until(lambda node=node: nodes.worker_ready(node))
    mllp.wait_until(lambda: nodes.port_open(mllp.port))
    url = f"https://127.0.0.1:{base}/healthz/ready"
    nginx.wait_until(
        lambda: httpx.get(url, verify=str(certificate.ca), timeout=2).is_success
    )
    cluster.ca_path = certificate.ca


def drive(
    args: argparse.Namespace, cluster: Cluster, *, api_key: str, run_id: str
) -> tuple[ApiLoad, MllpLoad, dict]:
    """Send every document; SIGKILL one web node and one worker node on the way."""
    mllp_count = max(1, round(args.documents * args.mllp_share))
    api = ApiLoad(
        base_url=f"https://127.0.0.1:{args.base_port}",
        ca_path=cluster.ca_path,
        api_key=api_key,
        run_id=run_id,
        count=args.documents - mllp_count,
        concurrency=args.concurrency,
    )
    mllp = MllpLoad(
        port=cluster.node("mllp").port,
        facility=SENDER_ODS,
        application=MLLP_APPLICATION,
        run_id=run_id,
        count=mllp_count,
    )
    kills: dict[str, float] = {}
    total = len(api.submissions)
    log(f"sending {total} documents through the API and {mllp_count} over MLLP")
    api.start()
    mllp.start()
    while api.running():
        time.sleep(0.05)
        if KILLED_WEB not in kills and api.done >= total * KILL_WEB_AT:
            cluster.node(KILLED_WEB).kill()
            kills[KILLED_WEB] = time.monotonic()
            log(f"SIGKILLed {KILLED_WEB} after {api.done} API documents")
        if (
            KILLED_WORKER not in kills
            and api.done >= total * KILL_WORKER_AT
            and nodes.worker_busy(cluster.node(KILLED_WORKER))
        ):
            worker_kill(cluster, kills, f"after {api.done} API documents")
    api.join()
    mllp.join()
    # The worker node dies with a task in hand; if it had none while documents
    # were coming in, it is given until the timeout to take one.
    deadline = time.monotonic() + 60
    while KILLED_WORKER not in kills:
        if nodes.worker_busy(cluster.node(KILLED_WORKER)):
            worker_kill(cluster, kills, "after the last document was sent")
        elif time.monotonic() > deadline:
            worker_kill(cluster, kills, "idle, after the last document was sent")
        time.sleep(0.05)
    return api, mllp, kills


def worker_kill(cluster: Cluster, kills: dict[str, float], when: str) -> None:
    node = cluster.node(KILLED_WORKER)
    task = nodes.worker_task_in_hand(node)
    node.kill()
    kills[KILLED_WORKER] = time.monotonic()
    log(f"SIGKILLed {KILLED_WORKER} {when}, running {task or 'nothing'}")


def settle(args: argparse.Namespace, expected: int, started: float) -> float:
    """Wait until every document is final or needs attention; seconds taken."""
    last = -1
    while time.monotonic() - started < args.timeout:
        settled, total = outcome.settled_count(args.database_url)
        if settled != last:
            log(f"{settled}/{expected} documents settled ({total} stored)")
            last = settled
        if settled >= expected and total >= expected:
            break
        time.sleep(1)
    return time.monotonic() - started


def machine_figures() -> dict:
    load = os.getloadavg()
    return {"load_average": [round(x, 2) for x in load]}


def stop_on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so every node is stopped and cleaned up."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="docflow-cluster-"))
    # nginx may run as another user (see deploy.nginx): it must reach its prefix.
    workdir.chmod(0o711)
    env = common_env(args, run_id=run_id, connect_secret=secrets.token_urlsafe(24))
    log(f"work directory {workdir}")
    database_recreate(args.database_url)
    redis_empty(args.redis_url)
    cluster = Cluster(workdir)
    sampler = None
    try:
        setup_env = node_env(env, workdir / "setup")
        log("migrating")
        manage = [sys.executable, "manage.py"]
        run_checked(
            [*manage, "migrate", "--no-input", "-v", "0"], env=setup_env, what="migrate"
        )
        run_checked([*manage, "setup_schedules"], env=setup_env, what="setup_schedules")
        api_key = json.loads(
            run_checked(
                [sys.executable, "-c", SETUP_SCRIPT], env=setup_env, what="setup"
            )
        )["api_key"]
        log("starting nginx, 2 web nodes, 2 worker nodes, simulator, MLLP listener")
        cluster_start(args, env, cluster)
        sampler = nodes.Sampler(cluster.all)
        sampler.start()
        machine_before = machine_figures()
        api, mllp, kills = drive(args, cluster, api_key=api_key, run_id=run_id)
        load_seconds = api.finished - api.started
        settle_seconds = settle(args, args.documents, time.monotonic())
        machine = {"before": machine_before, "after": machine_figures()}
        sampler.stop()
        sampler = None
        cluster.stop()
        database = outcome.database_outcome(args.database_url)
        simulator = outcome.simulator_outcome(
            workdir / "simulator" / "simulator.sqlite3", database
        )
        nginx_dir = workdir / "nginx"
        report, verdict = rehearsal_report(
            documents=args.documents,
            api=api,
            mllp=mllp,
            kills=kills,
            killed_web=KILLED_WEB,
            database=database,
            simulator=simulator,
            web_answers={
                n.name: outcome.gunicorn_counts(n.directory / "access.log")
                for n in cluster.web
            },
            nginx_answers=outcome.nginx_statuses(
                nginx_dir / "access.log", path="/api/v1/documents"
            ),
            nginx_errors=outcome.nginx_upstream_errors(nginx_dir / "error.log"),
            web_addresses={n.name: f"127.0.0.1:{n.port}" for n in cluster.web},
            tasks={
                n.name: outcome.tasks_processed(n.log_path) for n in cluster.workers
            },
            cpu_seconds={n.name: n.cpu_seconds() for n in cluster.all},
            load_seconds=load_seconds,
            settle_seconds=settle_seconds,
            machine=machine,
        )
    finally:
        if sampler is not None:
            sampler.stop()
        cluster.stop()
        redis_empty(args.redis_url)
        if args.keep:
            log(f"kept {workdir} and the database")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            database_drop(args.database_url)
    report["workdir"] = str(workdir) if args.keep else None
    print(
        json.dumps(report, indent=2) if args.json else report_text(report), flush=True
    )
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
