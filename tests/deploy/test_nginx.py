"""The nginx site, rendered from deploy/nginx/ by deploy.nginx, in front of two real
gunicorn web nodes (deploy/gunicorn.conf.py, production settings from the
environment template) on SQLite or PostgreSQL and the Redis broker: TLS verified
against a test CA, readiness through nginx, and requests still answered when one
node is killed.

Skipped only when nginx is not installed (scripts/bootstrap-system installs it).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from deploy.nginx import (
    RenderError,
    Site,
    Upstream,
    nginx_binary,
    render_site,
    wait_listening,
    write_standalone,
)
from deploy.tls import make_loopback_certificates
from tests.deploy.environments import production_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(23000, 24000)  # this suite's share of the machine's ports
REDIS_TEST_URL = "redis://127.0.0.1:6379/3"

needs_nginx = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (scripts/bootstrap-system)"
)


def free_ports(count: int) -> list[int]:
    """``count`` ports of our range nobody listens on (tried in a random order)."""
    found = []
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free ports in 23000-23999")


@pytest.fixture
def prefix():
    """A directory an unprivileged nginx can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="docflow-nginx-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def site_for(certs, *, ports: list[int], listen: int, http_listen: int) -> Site:
    return Site(
        upstreams=[
            Upstream(f"127.0.0.1:{port}", fail_timeout_seconds=30) for port in ports
        ],
        certificate=certs.certificate,
        certificate_key=certs.key,
        server_name="localhost",
        listen=f"127.0.0.1:{listen}",
        http_listen=f"127.0.0.1:{http_listen}",
    )


def test_rendering_refuses_bad_or_missing_values(tmp_path):
    certs = make_loopback_certificates(tmp_path)
    with pytest.raises(RenderError, match="at least one upstream"):
        render_site(
            Site(upstreams=[], certificate=certs.certificate, certificate_key=certs.key)
        )
    with pytest.raises(RenderError, match="not host:port"):
        render_site(
            Site(
                upstreams=[Upstream("10.0.0.1; evil")],
                certificate=certs.certificate,
                certificate_key=certs.key,
            )
        )
    text = render_site(
        Site(
            upstreams=[Upstream("10.0.0.11:8000"), Upstream("10.0.0.12:8000")],
            certificate=certs.certificate,
            certificate_key=certs.key,
            server_name="docflow.trust.nhs.uk",
        )
    )
    assert "@" not in text.replace("$", "")  # no placeholder left
    assert "server 10.0.0.11:8000 max_fails=3 fail_timeout=10s;" in text
    assert "server 10.0.0.12:8000 max_fails=3 fail_timeout=10s;" in text
    assert "proxy_next_upstream error timeout http_502 http_504;" in text


@needs_nginx
def test_nginx_accepts_the_rendered_configuration(prefix):
    certs = make_loopback_certificates(prefix / "tls")
    upstreams = free_ports(4)
    standalone = write_standalone(
        prefix,
        site_for(
            certs, ports=upstreams[:2], listen=upstreams[2], http_listen=upstreams[3]
        ),
    )
    result = subprocess.run(
        standalone.command(test=True), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stderr


@needs_nginx
def test_nginx_refuses_a_broken_configuration(prefix):
    """The check above can fail: a certificate that is not there is refused."""
    certs = make_loopback_certificates(prefix / "tls")
    ports = free_ports(4)
    site = site_for(certs, ports=ports[:2], listen=ports[2], http_listen=ports[3])
    standalone = write_standalone(prefix, site)
    certs.certificate.unlink()
    result = subprocess.run(
        standalone.command(test=True), capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


class WebNode:
    """One gunicorn web node started from deploy/gunicorn.conf.py."""

    def __init__(self, *, port: int, env: dict[str, str], directory: Path):
        self.port = port
        self.access_log = directory / f"access-{port}.log"
        self.output = directory / f"gunicorn-{port}.log"
        node_env = env | {
            "DOCFLOW_GUNICORN_BIND": f"127.0.0.1:{port}",
            "DOCFLOW_GUNICORN_WORKERS": "1",
            "DOCFLOW_GUNICORN_ACCESS_LOG": str(self.access_log),
            "DOCFLOW_GUNICORN_LOG_LEVEL": "warning",
        }
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
                cwd=ROOT,
                env=node_env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def served(self) -> int:
        """Requests this node has logged."""
        if not self.access_log.exists():
            return 0
        return len(self.access_log.read_text().splitlines())

    def kill(self) -> None:
        """SIGKILL the whole node, and wait until its port refuses connections (a
        worker still dying holds the listening socket for a moment: a request sent
        to it then is in flight on a dead node, answered 502, for the client to
        retry with its Idempotency-Key)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.05)
        raise AssertionError(f"port {self.port} still accepts after the kill")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def node_environment(directory: Path) -> dict[str, str]:
    """Production settings from the template, on Redis db 3 and the suite's
    PostgreSQL server when DATABASE_URL names one (readiness only asks it SELECT 1),
    else a SQLite file of their own."""
    env = production_environment(directory)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        database_url = f"sqlite:///{directory / 'docflow.sqlite3'}"
    env |= {
        "DATABASE_URL": database_url,
        "DATABASE_MIGRATION_URL": "",
        "REDIS_URL": os.environ.get("DOCFLOW_TEST_REDIS_URL", REDIS_TEST_URL),
        "DOCFLOW_CACHE_PREFIX": "docflow-deploy-test",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://localhost",
        "DOCFLOW_GUNICORN_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "DOCFLOW_CONNECT_BASE_URL": "http://127.0.0.1:9",
        "LOG_LEVEL": "WARNING",
        "HOME": str(directory),
    }
    return env


@needs_nginx
def test_two_web_nodes_behind_nginx_with_tls_survive_losing_one(prefix):
    certs = make_loopback_certificates(prefix / "tls")
    node_ports = free_ports(4)
    https_port, http_port = node_ports[2], node_ports[3]
    work = Path(tempfile.mkdtemp(prefix="docflow-nodes-test-"))
    env = node_environment(work)
    nodes = [WebNode(port=port, env=env, directory=work) for port in node_ports[:2]]
    standalone = write_standalone(
        prefix,
        site_for(certs, ports=node_ports[:2], listen=https_port, http_listen=http_port),
    )
    nginx = None
    try:
        for node in nodes:
            wait_listening("127.0.0.1", node.port, timeout=90, process=node.process)
        nginx = standalone.start(log_path=work / "nginx.out")
        wait_listening("127.0.0.1", https_port, timeout=20, process=nginx)

        with httpx.Client(
            base_url=f"https://localhost:{https_port}",
            verify=ssl.create_default_context(cafile=str(certs.ca)),
            timeout=30,
        ) as client:
            # Readiness through nginx over verified TLS: the database and the broker.
            ready = client.get("/healthz/ready")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["checks"]["database"]["status"] == "ok"
            assert body["checks"]["broker"]["status"] == "ok"
            # nginx says the request came over HTTPS (X-Forwarded-Proto): the API
            # answers instead of redirecting, with HSTS; asked directly over plain
            # HTTP, the node redirects the same request to HTTPS.
            api = client.get("/api/v1/documents")
            assert api.status_code in (401, 403), api.text[:500]
            assert "max-age=31536000" in api.headers["strict-transport-security"]
            direct = httpx.get(
                f"http://127.0.0.1:{nodes[1].port}/api/v1/documents",
                headers={"Host": "localhost"},
                timeout=10,
            )
            assert direct.status_code == 301
            # Metrics are never served through the public entrance.
            assert client.get("/metrics").status_code == 404

            # Both nodes take requests.
            for _ in range(10):
                assert client.get("/healthz/live").status_code == 200
            time.sleep(0.5)
            before = [node.served() for node in nodes]
            assert all(count > 0 for count in before), before

            # One node dies: every request is still answered, by the other.
            nodes[0].kill()
            # First POSTs, while nginx still tries the dead node (until max_fails):
            # a POST whose connection was refused was never sent, so nginx passes it
            # to the other node too (which answers it: unauthenticated).
            posts = [
                client.post("/api/v1/documents", json={}).status_code for _ in range(6)
            ]
            assert set(posts) <= {401, 403}, (posts, standalone.error_log.read_text())
            refused = [
                line
                for line in standalone.error_log.read_text().splitlines()
                if "Connection refused" in line and '"POST /api/v1/documents' in line
            ]
            assert refused, "no POST was tried on the dead node first"
            answers = [client.get("/healthz/ready").status_code for _ in range(20)]
            assert answers == [200] * 20
            time.sleep(0.5)
            assert nodes[0].served() == before[0]
            assert nodes[1].served() >= before[1] + 26

        # The client must trust the CA: without it the TLS handshake fails.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://localhost:{https_port}/healthz/live", timeout=10)
        # Plain HTTP is only a redirect to HTTPS.
        plain = httpx.get(f"http://127.0.0.1:{http_port}/healthz/ready", timeout=10)
        assert plain.status_code == 301
        assert plain.headers["location"].startswith("https://")
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.terminate()
            nginx.wait(timeout=20)
        for node in nodes:
            node.stop()
        shutil.rmtree(work, ignore_errors=True)
