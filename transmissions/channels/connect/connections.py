"""One Connect client per sending organisation per process, built from its secret."""

from __future__ import annotations

import threading

from django.conf import settings

from docflow.configuration import read_secret
from docflow.models import SendingOrganisation
from transmissions.channels.connect.client import ConnectClient, Timeouts

_clients: dict[tuple[int, str, str], ConnectClient] = {}
_lock = threading.Lock()


def connect_client_for(organisation: SendingOrganisation) -> ConnectClient:
    """A client with the organisation's own credentials; the secret comes from the
    environment or a secret file named by ``connect_secret_ref``, never the database."""
    secret = (
        read_secret(organisation.connect_secret_ref)
        if organisation.connect_secret_ref
        else None
    )
    key = (
        organisation.pk,
        settings.DOCFLOW_CONNECT_BASE_URL,
        settings.DOCFLOW_CONNECT_TOKEN_GRANT,
        secret or "",
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = ConnectClient(
                base_url=settings.DOCFLOW_CONNECT_BASE_URL,
                client_id=organisation.connect_client_id,
                client_secret=secret,
                token_grant=settings.DOCFLOW_CONNECT_TOKEN_GRANT,
                timeouts=Timeouts(
                    connect=settings.DOCFLOW_CONNECT_TIMEOUTS[0],
                    read=settings.DOCFLOW_CONNECT_TIMEOUTS[1],
                    write=settings.DOCFLOW_CONNECT_TIMEOUTS[2],
                    pool=settings.DOCFLOW_CONNECT_TIMEOUTS[3],
                ),
            )
            _clients[key] = client
        return client


def connect_clients_close() -> None:
    """Drop cached clients (tests, settings changes)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
