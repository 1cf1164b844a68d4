"""Settings refuse to start without secrets in production, and help in development."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET_NAMES = ("DJANGO_SECRET_KEY", "DOCFLOW_PAYLOAD_KEYS")
CONTROLLED = (*SECRET_NAMES, "DJANGO_DEBUG", "CONN_MAX_AGE")
PAYLOAD_KEYS = "kprod:" + base64.urlsafe_b64encode(bytes(range(32))).decode()


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    """The current environment minus every variable these tests control."""
    removed = {*CONTROLLED, *(f"{name}_FILE" for name in CONTROLLED)}
    env = {k: v for k, v in os.environ.items() if k not in removed}
    env["DOCFLOW_DEV_SECRETS_FILE"] = str(tmp_path / "secrets" / "dev-secrets.json")
    env["DOCFLOW_VAR_DIR"] = str(tmp_path / "var")
    return env


def manage_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_refuses_to_start_without_secrets(environment, tmp_path):
    environment["DJANGO_DEBUG"] = "0"

    result = manage_check(environment)

    assert result.returncode != 0
    assert "Missing secrets with DEBUG off" in result.stderr
    for name in SECRET_NAMES:
        assert name in result.stderr
    assert not Path(environment["DOCFLOW_DEV_SECRETS_FILE"]).exists()


def test_production_names_only_the_secret_that_is_missing(environment):
    environment["DJANGO_DEBUG"] = "0"
    environment["DJANGO_SECRET_KEY"] = "a-long-production-secret-key-for-this-test"

    result = manage_check(environment)

    assert result.returncode != 0
    assert "Missing secrets with DEBUG off: DOCFLOW_PAYLOAD_KEYS." in result.stderr


def test_development_generates_a_private_secrets_file_once(environment):
    environment["DJANGO_DEBUG"] = "1"
    secrets_file = Path(environment["DOCFLOW_DEV_SECRETS_FILE"])

    first = manage_check(environment)

    assert first.returncode == 0, first.stderr
    assert "System check identified no issues" in first.stdout
    assert "generated development secrets" in first.stderr
    assert str(secrets_file) in first.stderr
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    generated = json.loads(secrets_file.read_text())
    assert set(generated) == set(SECRET_NAMES)
    assert all(generated.values())

    second = manage_check(environment)

    assert second.returncode == 0, second.stderr
    assert "generated development secrets" not in second.stderr
    assert json.loads(secrets_file.read_text()) == generated


def test_production_starts_with_secrets_from_files(environment, tmp_path):
    secret_key_file = tmp_path / "secret_key"
    secret_key_file.write_text("a-long-production-secret-key-for-this-test\n")
    payload_keys_file = tmp_path / "payload_keys"
    payload_keys_file.write_text(PAYLOAD_KEYS + "\n")
    environment["DJANGO_DEBUG"] = "0"
    environment["DJANGO_SECRET_KEY_FILE"] = str(secret_key_file)
    environment["DOCFLOW_PAYLOAD_KEYS_FILE"] = str(payload_keys_file)

    result = manage_check(environment)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "generated development secrets" not in result.stderr
    assert not Path(environment["DOCFLOW_DEV_SECRETS_FILE"]).exists()


def test_production_refuses_an_unreadable_secret_file(environment, tmp_path):
    environment["DJANGO_DEBUG"] = "0"
    environment["DJANGO_SECRET_KEY_FILE"] = str(tmp_path / "missing")
    environment["DOCFLOW_PAYLOAD_KEYS"] = PAYLOAD_KEYS

    result = manage_check(environment)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FILE cannot be read" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1"])
def test_non_persistent_database_connections_are_refused(environment, value):
    environment["DJANGO_DEBUG"] = "1"
    environment["CONN_MAX_AGE"] = value

    result = manage_check(environment)

    assert result.returncode != 0
    assert "CONN_MAX_AGE must be > 0" in result.stderr


def test_persistent_database_connections_are_accepted(environment):
    environment["DJANGO_DEBUG"] = "1"
    environment["CONN_MAX_AGE"] = "30"

    result = manage_check(environment)

    assert result.returncode == 0, result.stderr


def production(environment: dict[str, str]) -> dict[str, str]:
    """Production as deployed: DEBUG off, its secrets and its host name."""
    for name in (
        "DOCFLOW_SSL_REDIRECT",
        "DOCFLOW_SECURE_COOKIES",
        "DOCFLOW_HSTS_SECONDS",
        "DOCFLOW_HSTS_PRELOAD",
        "DOCFLOW_ADMIN_REQUIRE_MFA",
        "DJANGO_ALLOWED_HOSTS",
        # Set by the browser tests for their own process; never in deployment.
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    ):
        environment.pop(name, None)
    environment["DJANGO_DEBUG"] = "0"
    environment["DJANGO_SECRET_KEY"] = base64.urlsafe_b64encode(
        bytes(range(100, 150))
    ).decode()
    environment["DOCFLOW_PAYLOAD_KEYS"] = PAYLOAD_KEYS
    environment["DJANGO_ALLOWED_HOSTS"] = "docflow.example.nhs.uk"
    return environment


def manage_deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deployment_checklist(environment):
    result = manage_deploy_check(production(environment))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr
    assert "security.W" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "check_id"),
    [
        ("DOCFLOW_SSL_REDIRECT", "0", "security.W008"),
        ("DOCFLOW_SECURE_COOKIES", "0", "security.W012"),
        ("DOCFLOW_HSTS_SECONDS", "0", "security.W004"),
    ],
)
def test_the_deployment_checklist_fails_when_a_protection_is_turned_off(
    environment, variable, value, check_id
):
    env = production(environment)
    env[variable] = value

    result = manage_deploy_check(env)

    assert result.returncode != 0
    assert check_id in result.stderr


def test_production_is_hardened_by_default(environment):
    script = (
        "from django.conf import settings as s; import json; print(json.dumps(["
        "s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        "s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE,"
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        "s.SECURE_HSTS_PRELOAD,"
        "s.X_FRAME_OPTIONS, s.SESSION_COOKIE_NAME, s.SESSION_SAVE_EVERY_REQUEST,"
        "s.SESSION_COOKIE_AGE, s.DOCFLOW_ADMIN_REQUIRE_MFA, s.AXES_ENABLED]))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=PROJECT_ROOT,
        env=production(environment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        True,
        True,
        True,
        True,
        True,
        "Lax",
        31_536_000,
        True,
        False,
        "DENY",
        "__Host-docflow_session",
        True,
        30 * 60,
        True,
        True,
    ]


def shell_last_line(env: dict[str, str], script: str) -> str:
    """What ``manage.py shell -c script`` printed last, under ``env``."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_session_idle_timeout_and_mfa_come_from_the_environment(environment):
    env = production(environment)
    env["DOCFLOW_SESSION_IDLE_SECONDS"] = "600"
    env["DOCFLOW_ADMIN_REQUIRE_MFA"] = "0"
    script = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_AGE, s.DOCFLOW_ADMIN_REQUIRE_MFA)"
    )

    assert shell_last_line(env, script) == "600 False"


def q_cluster_in(env: dict[str, str], *keys: str) -> list[str]:
    script = (
        "from django_q.conf import Conf; "
        f"print(*[getattr(Conf, k) for k in {list(keys)!r}])"
    )
    return shell_last_line(env, script).split()


def test_workers_are_recycled_rarely_by_count_and_always_by_memory(environment):
    env = production(environment)
    env.pop("Q_RECYCLE", None)
    env.pop("Q_MAX_RSS_KB", None)

    # django-q's own default replaces a worker every 500 tasks.
    assert q_cluster_in(env, "RECYCLE", "MAX_RSS") == ["5000", str(512 * 1024)]

    env["Q_RECYCLE"] = "200"
    env["Q_MAX_RSS_KB"] = "262144"
    assert q_cluster_in(env, "RECYCLE", "MAX_RSS") == ["200", "262144"]
