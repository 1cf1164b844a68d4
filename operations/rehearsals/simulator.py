"""The Connect simulator's control API (``/_sim``), as rehearsals drive it.

Refuses anything but a simulator on loopback: the control API does not exist at
Connect, and a rehearsal must never reach a real practice.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class RehearsalRefused(Exception):
    """The rehearsal cannot run here (not the simulator, no such scenario)."""


@dataclass(frozen=True)
class SimulatorControl:
    url: str

    def check(self) -> None:
        """The URL is a simulator on loopback that answers its health check."""
        host = urlsplit(self.url).hostname or ""
        if host not in LOOPBACK:
            raise RehearsalRefused(
                f"Connect is at {host}: rehearsals run only against the simulator "
                "on loopback."
            )
        try:
            httpx.get(f"{self.url}/_sim/health", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise RehearsalRefused(
                f"No Connect simulator answers at {self.url} ({type(exc).__name__})."
            ) from exc

    def _put(self, path: str, body: dict) -> None:
        response = httpx.put(f"{self.url}{path}", json=body, timeout=10)
        response.raise_for_status()

    def organisation_set(
        self, *, ods_code: str, endpoint_type: str, behaviour: str, name: str = ""
    ) -> None:
        """A practice at the simulator, behaving as ``behaviour`` says."""
        body = {"endpoint_type": endpoint_type, "behaviour": behaviour}
        if name:
            body["name"] = name
        self._put(f"/_sim/organisations/{ods_code}", body)

    def client_secret_set(
        self, *, client_id: str, secret: str, sending_ods_code: str
    ) -> None:
        """Connect's secret for a client (its tokens are revoked)."""
        self._put(
            f"/_sim/clients/{client_id}",
            {"client_secret": secret, "sending_ods_code": sending_ods_code},
        )

    def outage_set(self, *, down: bool) -> None:
        """Every Connect call answers 503 while down (the control API still works)."""
        self._put("/_sim/outage", {"down": down})
