"""Rules every client that talks to the outside shares: which base URLs it may
use, and how long an answer asks it to wait before trying again."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (IPv4 or IPv6, bracketed or not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url_checked(base_url: str, *, service: str, error: type[Exception]) -> str:
    """``base_url`` without its trailing slash if it is HTTPS to a host, or plain
    HTTP to this machine (a simulator); anything else raises ``error``."""
    parts = urlsplit(base_url or "")
    if parts.scheme == "https" and parts.hostname:
        return base_url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return base_url.rstrip("/")
    raise error(
        f"Refusing {parts.scheme or 'schemeless'} URL for {service}: use https "
        "(plain http is allowed only to loopback)."
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (never negative), if it gives one
    as a number."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
