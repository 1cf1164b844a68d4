"""The production environment the template describes, made real in a directory:
fresh secrets in their files, local state there too, so nothing outside is touched."""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.signing import private_key_text
from deploy.environment import read_environment_file
from docflow.configuration import new_payload_key_spec


def production_environment(directory: Path) -> dict[str, str]:
    """The template's values, with each secret file made (fresh secrets) under
    ``directory`` and local state there too, so nothing outside it is touched."""
    template = read_environment_file()
    env = dict(template.values)
    special = {
        "DOCFLOW_PAYLOAD_KEYS_FILE": new_payload_key_spec,
        "DOCFLOW_AUDIT_SIGNING_KEY_FILE": lambda: private_key_text(
            Ed25519PrivateKey.generate()
        ),
    }
    secret_dir = directory / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    for name, value in template.values.items():
        if not name.endswith("_FILE"):
            continue
        path = secret_dir / Path(value).name
        path.write_text(special.get(name, lambda: secrets.token_urlsafe(50))() + "\n")
        path.chmod(0o600)
        env[name] = str(path)
    env["DOCFLOW_VAR_DIR"] = str(directory / "var")
    return env
