"""Task functions only the tests queue (a real cluster imports them by dotted name)."""

from __future__ import annotations

import time


def sleep_past_timeout(seconds: float) -> str:
    """Sleep for ``seconds``: past the cluster's timeout, so django-q stops it."""
    time.sleep(seconds)
    return "woke up"
