"""gunicorn settings for a docflow web node: ``gunicorn -c deploy/gunicorn.conf.py``.

Every value can be changed from the environment file (deploy/docflow.env.example):

- ``DOCFLOW_GUNICORN_BIND``: where the node listens for nginx (default
  ``0.0.0.0:8000``; the nodes' port is reachable from the nginx machines only).
- ``DOCFLOW_GUNICORN_WORKERS``: worker processes (default 2 x cores + 1).
- ``DOCFLOW_GUNICORN_WORKER_CLASS`` (``sync``) and ``DOCFLOW_GUNICORN_THREADS``: sync
  workers measured fastest on this application (bench/intake.py): requests are
  CPU-bound (PDF checks, encryption), so threads contend for the GIL; nginx buffers
  whole request bodies, so a slow client never holds a sync worker.
- ``DOCFLOW_GUNICORN_TIMEOUT``: a worker silent this long is killed and replaced
  (nginx's proxy_read_timeout, 75 s, is longer, so gunicorn's answer comes first).
- ``DOCFLOW_GUNICORN_MAX_REQUESTS``: a worker is replaced after this many requests
  (with jitter, so they are not all replaced at once).
- ``DOCFLOW_GUNICORN_FORWARDED_ALLOW_IPS``: the nginx addresses whose
  X-Forwarded-* headers gunicorn believes (Django reads X-Forwarded-Proto itself
  through DOCFLOW_PROXY_SSL_HEADER).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


wsgi_app = "docflow.wsgi:application"
bind = [os.environ.get("DOCFLOW_GUNICORN_BIND", "0.0.0.0:8000")]
workers = _int("DOCFLOW_GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1)
worker_class = os.environ.get("DOCFLOW_GUNICORN_WORKER_CLASS", "sync")
threads = _int("DOCFLOW_GUNICORN_THREADS", 1)
timeout = _int("DOCFLOW_GUNICORN_TIMEOUT", 60)
# SIGTERM (systemctl stop, a deploy): requests in flight get this long to finish.
graceful_timeout = _int("DOCFLOW_GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
backlog = 2048
max_requests = _int("DOCFLOW_GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get(
    "DOCFLOW_GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1"
)
# The heartbeat file each worker touches: in memory, never on a disk that can stall.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
# Logs go to stdout/stderr (journald under systemd). The access log shows paths and
# statuses only: docflow's URLs carry public ids, never patient data.
accesslog = os.environ.get("DOCFLOW_GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("DOCFLOW_GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
proc_name = "docflow-web"
# Workers import the application after the fork: a database connection or a Redis
# client is never shared between processes.
preload_app = False
