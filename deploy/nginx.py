"""Render the nginx site for docflow from deploy/nginx/, the one template everyone uses.

Two outputs:

- the **site** (``docflow-site.conf.template``): the upstream of web nodes and the
  TLS server, for ``/etc/nginx/sites-available/docflow`` on a Debian machine;
- a **standalone** configuration (``standalone.conf.template``): the site wrapped in
  a whole ``nginx.conf`` whose every file lives under one prefix directory, so an
  ordinary user can run nginx on loopback (tests, ``bench/intake.py --via-nginx``,
  the cluster rehearsal).

Placeholders are ``@NAME@``; rendering fails if one is left unfilled or unknown, so
a template and its renderer cannot drift apart silently. Command line::

    python -m deploy.nginx site --server-name docflow.trust.nhs.uk \\
        --upstream 10.0.0.11:8000 --upstream 10.0.0.12:8000 \\
        --certificate /etc/ssl/docflow/fullchain.pem \\
        --certificate-key /etc/ssl/private/docflow.key
    python -m deploy.nginx standalone --prefix /tmp/edge --listen 127.0.0.1:23443 \\
        --http-listen 127.0.0.1:23080 --upstream 127.0.0.1:23001 ... \\
        --certificate cert.pem --certificate-key key.pem

``standalone`` writes ``<prefix>/nginx.conf`` and ``<prefix>/docflow-site.conf``
and prints the command that starts nginx in the foreground.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent / "nginx"
SITE_TEMPLATE = TEMPLATE_DIR / "docflow-site.conf.template"
STANDALONE_TEMPLATE = TEMPLATE_DIR / "standalone.conf.template"
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
TEMP_DIRECTORIES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# The upload ceiling's default (20 MiB) in base64 JSON plus metadata, rounded up.
DEFAULT_CLIENT_MAX_BODY_SIZE = "28m"


class RenderError(ValueError):
    """A template could not be filled: a placeholder without a value, or bad input."""


@dataclass(frozen=True)
class Upstream:
    """One web node: ``host:port`` and nginx's passive-check parameters for it."""

    address: str
    max_fails: int = 3
    fail_timeout_seconds: int = 10
    backup: bool = False

    def line(self) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d+", self.address):
            raise RenderError(f"upstream {self.address!r} is not host:port")
        backup = " backup" if self.backup else ""
        return (
            f"    server {self.address} max_fails={self.max_fails} "
            f"fail_timeout={self.fail_timeout_seconds}s{backup};"
        )


@dataclass(frozen=True)
class Site:
    """Everything the site template asks for."""

    upstreams: list[Upstream]
    certificate: Path
    certificate_key: Path
    server_name: str = "_"
    listen: str = "443"
    http_listen: str = "80"
    client_max_body_size: str = DEFAULT_CLIENT_MAX_BODY_SIZE

    def values(self) -> dict[str, str]:
        if not self.upstreams:
            raise RenderError("at least one upstream web node is needed")
        for name, text in (
            ("server name", self.server_name),
            ("listen", self.listen),
            ("HTTP listen", self.http_listen),
            ("client_max_body_size", self.client_max_body_size),
        ):
            if not text or re.search(r"[\s;{}]", text):
                raise RenderError(f"{name} {text!r} is empty or not one nginx word")
        return {
            "UPSTREAM_SERVERS": "\n".join(u.line() for u in self.upstreams),
            "CERTIFICATE": _path_word(self.certificate),
            "CERTIFICATE_KEY": _path_word(self.certificate_key),
            "SERVER_NAME": self.server_name,
            "LISTEN": self.listen,
            "HTTP_LISTEN": self.http_listen,
            "CLIENT_MAX_BODY_SIZE": self.client_max_body_size,
        }


def _path_word(path: Path) -> str:
    text = str(path)
    if re.search(r"[\s;{}\"']", text):
        raise RenderError(f"path {text!r} has characters nginx would split on")
    return text


def fill(template: str, values: dict[str, str]) -> str:
    """Replace every ``@NAME@``; an unknown or unfilled name is an error."""
    wanted = set(PLACEHOLDER.findall(template))
    missing = sorted(wanted - values.keys())
    if missing:
        raise RenderError(f"no value for placeholder(s): {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def render_site(site: Site) -> str:
    """The site file's text (``upstream`` and ``server`` blocks)."""
    return fill(SITE_TEMPLATE.read_text(encoding="utf-8"), site.values())


def render_standalone(*, prefix: Path, worker_processes: int = 1) -> str:
    """The ``nginx.conf`` text that includes ``<prefix>/docflow-site.conf``."""
    if worker_processes < 1:
        raise RenderError("worker_processes must be at least 1")
    values = {
        "PREFIX": _path_word(prefix.resolve()),
        "WORKER_PROCESSES": str(worker_processes),
    }
    return fill(STANDALONE_TEMPLATE.read_text(encoding="utf-8"), values)


@dataclass(frozen=True)
class Standalone:
    """A rendered standalone nginx under ``prefix``, and how to start it."""

    prefix: Path
    config: Path
    site: Path

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    def command(self, *, nginx: str | None = None, test: bool = False) -> list[str]:
        """``nginx -p <prefix> -c <conf> -e <error log>`` (with ``-t``: check only)."""
        binary = nginx or nginx_binary()
        if binary is None:
            raise RenderError("nginx is not installed")
        command = [binary, "-p", str(self.prefix), "-c", str(self.config)]
        command += ["-e", str(self.error_log)]
        return [*command, "-t"] if test else command

    def start(self, *, log_path: Path | None = None) -> subprocess.Popen:
        """Start nginx in the foreground, in its own process group. Run by root (a
        test machine, CI), it is handed to ``nobody`` first: the prefix is given to
        that user and nginx never runs with privileges it does not need."""
        kwargs: dict = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in [self.prefix, *self.prefix.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        output = log_path.open("ab") if log_path else subprocess.DEVNULL
        try:
            return subprocess.Popen(  # noqa: S603 (our own nginx command line)
                self.command(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        finally:
            if log_path:
                output.close()


def wait_listening(
    host: str, port: int, *, timeout: float = 20.0, process=None
) -> None:
    """Wait until ``host:port`` accepts TCP connections (or ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RenderError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RenderError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def write_standalone(
    prefix: Path, site: Site, *, worker_processes: int = 1
) -> Standalone:
    """Write the site and the standalone ``nginx.conf`` under ``prefix`` (created),
    with the temporary directories nginx writes request bodies to."""
    prefix = prefix.resolve()
    # An ordinary user (nginx's workers, when root hands it to nobody) reaches it.
    prefix.mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)
    for name in TEMP_DIRECTORIES:
        (prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
    site_path = prefix / "docflow-site.conf"
    site_path.write_text(render_site(site), encoding="utf-8")
    config = prefix / "nginx.conf"
    config.write_text(
        render_standalone(prefix=prefix, worker_processes=worker_processes),
        encoding="utf-8",
    )
    return Standalone(prefix=prefix, config=config, site=site_path)


def nginx_binary() -> str | None:
    """Debian's nginx (/usr/sbin is not on an ordinary user's PATH), or None."""
    found = shutil.which("nginx")
    if found:
        return found
    candidate = Path("/usr/sbin/nginx")
    return str(candidate) if os.access(candidate, os.X_OK) else None


def _site_from(args: argparse.Namespace) -> Site:
    return Site(
        upstreams=[
            Upstream(
                address,
                max_fails=args.max_fails,
                fail_timeout_seconds=args.fail_timeout,
            )
            for address in args.upstream
        ],
        certificate=Path(args.certificate),
        certificate_key=Path(args.certificate_key),
        server_name=args.server_name,
        listen=args.listen,
        http_listen=args.http_listen,
        client_max_body_size=args.client_max_body_size,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.nginx",
        description="Render docflow's nginx site (or a standalone nginx around it).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    site_parser = commands.add_parser("site", help="print the site file")
    standalone_parser = commands.add_parser(
        "standalone", help="write nginx.conf and the site under --prefix"
    )
    for sub in (site_parser, standalone_parser):
        sub.add_argument("--upstream", action="append", required=True)
        sub.add_argument("--certificate", required=True)
        sub.add_argument("--certificate-key", required=True)
        sub.add_argument("--server-name", default="_")
        sub.add_argument("--listen", default="443")
        sub.add_argument("--http-listen", default="80")
        sub.add_argument("--client-max-body-size", default=DEFAULT_CLIENT_MAX_BODY_SIZE)
        sub.add_argument("--max-fails", type=int, default=3)
        sub.add_argument("--fail-timeout", type=int, default=10)
    standalone_parser.add_argument("--prefix", required=True)
    standalone_parser.add_argument("--worker-processes", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        site = _site_from(args)
        if args.command == "site":
            sys.stdout.write(render_site(site))
            return 0
        written = write_standalone(
            Path(args.prefix), site, worker_processes=args.worker_processes
        )
        print(" ".join(written.command(nginx=nginx_binary() or "nginx")))
    except RenderError as exc:
        print(f"deploy.nginx: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
