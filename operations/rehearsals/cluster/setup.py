"""Setting the rehearsal up and clearing it away: its own PostgreSQL database and
Redis database, the environment every node shares and each node's own, the data
the run needs (a sender, a destination, an API key, an MLLP source) and the
simulator's scenario."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from cryptography.fernet import Fernet
from psycopg import sql

from operations.rehearsals.cluster import nodes
from operations.rehearsals.cluster.traffic import DESTINATION

SENDER_ODS = "RREH"
CLIENT_ID = "client-RREH"
MLLP_APPLICATION = "REHEARSAL"
SETUP_SCRIPT = f"""
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from docflow.models import ApiKey, Organisation, SendingOrganisation
from intake.models import SourceSystem

organisation, _ = SendingOrganisation.objects.update_or_create(
    ods_code="{SENDER_ODS}",
    defaults={{
        "name": "Rehearsal Hospitals NHS Trust",
        "connect_client_id": "{CLIENT_ID}",
        "connect_secret_ref": "CONNECT_SECRET_{SENDER_ODS}",
    }},
)
Organisation.objects.update_or_create(
    ods_code="{DESTINATION}",
    defaults={{"name": "Riverside Surgery", "endpoint_type": "docman10"}},
)
user = get_user_model().objects.create(username="svc-rehearsal", is_active=True)
_key, raw = ApiKey.objects.create_key(
    name="rehearsal", sending_organisation=organisation, user=user
)
SourceSystem.objects.create(
    code="rehearsal-engine", name="Rehearsal engine", channel="mllp",
    sending_organisation=organisation, sending_facility="{SENDER_ODS}",
    sending_application="{MLLP_APPLICATION}",
)
json.dump({{"api_key": raw}}, sys.stdout)
"""


def database_recreate(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    maintenance = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    maintenance = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def redis_empty(url: str) -> None:
    """Empty the rehearsal's own Redis database (the broker's queue, the cache)."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def common_env(args: argparse.Namespace, *, run_id: str, connect_secret: str) -> dict:
    """What every Django process of the cluster shares: one database, one Redis,
    the same secrets (as every node of one installation would)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DOCFLOW_", "DATABASE_", "Q_"))
    }
    payload_key = Fernet.generate_key().decode()
    env.update(
        DJANGO_SETTINGS_MODULE="docflow.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DOCFLOW_CACHE_PREFIX=f"rehearsal-{run_id}",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DOCFLOW_PAYLOAD_KEYS=f"k1:{payload_key}",
        DOCFLOW_PAYLOAD_STORE="database",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DOCFLOW_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
        # The rehearsal's patients are of the test range.
        DOCFLOW_ALLOW_TEST_NHS_NUMBERS="1",
        # The rehearsal is about nodes dying, not about the door: no rate limit
        # and no backpressure, so the only refusals are the kills' doing.
        DOCFLOW_API_RATE_PER_KEY="",
        DOCFLOW_API_RATE_PER_SOURCE="",
        DOCFLOW_INTAKE_BACKPRESSURE_DEPTH="0",
        CONNECT_SECRET_RREH=connect_secret,
        CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def node_env(env: dict, directory: Path) -> dict:
    """A node's own var directory (and payload directory, unused by the database
    store): nothing on disk is shared between nodes."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "DOCFLOW_VAR_DIR": str(directory / "var"),
        "DOCFLOW_PAYLOAD_DIR": str(directory / "var" / "payloads"),
    }


def run_checked(command: list[str], *, env: dict, what: str) -> str:
    done = subprocess.run(  # noqa: S603 (our own argv)
        command, cwd=nodes.ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise nodes.NodeFailed(f"{what} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def scenario_write(path: Path, *, secret: str) -> None:
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
