"""The address of whoever is at the other end of a request, as sign-in throttling
(django-axes, ``AXES_CLIENT_IP_CALLABLE``) counts failures by.

Behind the load balancer every request arrives from the nginx machines, so
``REMOTE_ADDR`` alone would make one person's failed sign-ins lock that username
out for everyone. nginx sets ``X-Real-IP`` to the address it was reached from
(deploy/nginx). That header is believed only when the request came from one of
``DOCFLOW_TRUSTED_PROXIES`` (addresses or networks); from anywhere else it is
ignored, so a client cannot choose the address it is counted under.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(request) -> str:
    """``X-Real-IP`` when the request came through a trusted proxy and the header
    holds one valid address; otherwise ``REMOTE_ADDR``."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = _networks(tuple(getattr(settings, "DOCFLOW_TRUSTED_PROXIES", ())))
    peer = _address(remote)
    if peer is None or not any(peer in network for network in trusted):
        return remote
    forwarded = _address(request.META.get("HTTP_X_REAL_IP", ""))
    return str(forwarded) if forwarded is not None else remote
