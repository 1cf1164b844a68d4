"""A MESH client for one mailbox, built from its secrets and the settings."""

from __future__ import annotations

from django.conf import settings

from docflow.configuration import read_secret
from transmissions.channels.mesh.client import MeshConnection, MeshMailboxClient
from transmissions.channels.mesh.errors import MeshConfigurationError
from transmissions.models import MeshMailbox

DEFAULT_BASE_URL = "https://msg.intspineservices.nhs.uk"
DEFAULT_CHUNK_SIZE = 20 * 1024 * 1024


def mesh_setting(name: str, default):
    """A MESH setting (DOCFLOW_MESH_*), with its default when not configured."""
    return getattr(settings, f"DOCFLOW_MESH_{name}", default)


def mesh_connection_for(mailbox: MeshMailbox) -> MeshConnection:
    """The mailbox's connection details; secrets come from the environment or a
    secret file named by the mailbox's references, never from the database."""
    password = read_secret(mailbox.password_ref) if mailbox.password_ref else None
    shared_key = read_secret(mailbox.shared_key_ref) if mailbox.shared_key_ref else None
    if not password or not shared_key:
        raise MeshConfigurationError(
            f"The secrets of {mailbox} are not set ({mailbox.password_ref}, "
            f"{mailbox.shared_key_ref})"
        )
    if bool(mailbox.client_cert_path) != bool(mailbox.client_key_path):
        raise MeshConfigurationError(f"{mailbox} needs both a certificate and a key")
    cert = (
        (mailbox.client_cert_path, mailbox.client_key_path)
        if mailbox.client_cert_path
        else None
    )
    timeouts = mesh_setting("TIMEOUTS", (5.0, 60.0))
    return MeshConnection(
        url=mailbox.base_url or mesh_setting("BASE_URL", DEFAULT_BASE_URL),
        mailbox_id=mailbox.mailbox_id,
        password=password,
        shared_key=shared_key,
        client_cert=cert,
        ca_cert=mailbox.ca_cert_path or mesh_setting("CA_CERT", None),
        chunk_size=int(mesh_setting("CHUNK_SIZE", DEFAULT_CHUNK_SIZE)),
        connect_timeout=float(timeouts[0]),
        read_timeout=float(timeouts[1]),
        max_retries=int(mesh_setting("MAX_RETRIES", 3)),
    )


def mesh_client_for(mailbox: MeshMailbox) -> MeshMailboxClient:
    """An open client for the mailbox (close it, or use it in a ``with`` block)."""
    return MeshMailboxClient(mesh_connection_for(mailbox))
