"""Secrets and environment parsing for settings.

Secrets come from the environment (``NAME``) or from a file named by ``NAME_FILE``
(the Docker/Kubernetes secrets convention). They never come from settings files or the
database. In development only, missing secrets are generated once into a git-ignored
file with mode 0600, in a directory of mode 0700.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from docflow.state_files import private_directory_ensure

DEV_SECRET_NAMES = ("DJANGO_SECRET_KEY", "DOCFLOW_PAYLOAD_KEYS")


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean flag: 1/true/yes/on are true."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer, failing loudly on garbage."""
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer") from exc


def read_secret(name: str) -> str | None:
    """Return a secret from ``NAME`` or the file named by ``NAME_FILE``."""
    value = os.environ.get(name)
    if value:
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE cannot be read: {exc}") from exc
    return None


def new_payload_key_spec() -> str:
    """A fresh key ring entry: ``<key id>:<urlsafe base64 of 32 random bytes>``."""
    key_id = "k" + secrets.token_hex(4)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return f"{key_id}:{key}"


def load_dev_secrets(path: Path) -> dict[str, str]:
    """Read (or create once, mode 0600) the development secrets file."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    private_directory_ensure(path.parent, tighten=False)
    generated = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DOCFLOW_PAYLOAD_KEYS": new_payload_key_spec(),
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our check and our open: use theirs.
        return json.loads(path.read_text(encoding="utf-8"))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(generated, handle)
    sys.stderr.write(
        f"docflow: generated development secrets in {path} (mode 0600). "
        "Never use them in production.\n"
    )
    return generated


def resolve_secrets(*, debug: bool, dev_secrets_path: Path) -> dict[str, str]:
    """Return every required secret; with DEBUG off, refuse to start without them."""
    found = {name: read_secret(name) for name in DEV_SECRET_NAMES}
    missing = [name for name, value in found.items() if not value]
    if not missing:
        return found  # type: ignore[return-value]
    if not debug:
        raise ImproperlyConfigured(
            "Missing secrets with DEBUG off: "
            + ", ".join(missing)
            + ". Set each as an environment variable or point NAME_FILE at a file."
        )
    dev = load_dev_secrets(dev_secrets_path)
    return {name: found[name] or dev[name] for name in DEV_SECRET_NAMES}
