"""Snapshots of costly figures, taken by the scheduled watch."""

from __future__ import annotations

from django.utils import timezone

from docflow.models import DocumentStatus
from operations.counting import documents_by_state_kept
from operations.models import Snapshot


def snapshot_save(*, key: str, data: dict, now=None) -> Snapshot:
    """Replace the snapshot under ``key`` (the last writer wins; it is only a cache of
    figures any run can recount)."""
    snapshot, _ = Snapshot.objects.update_or_create(
        key=key, defaults={"data": data, "taken_at": now or timezone.now()}
    )
    return snapshot


def documents_by_state_snapshot_take(*, now=None) -> Snapshot:
    """Documents by state, from the kept counts (every state, zeros included), for
    every page view and scrape until the next."""
    kept = documents_by_state_kept()
    data = {state: kept.get(state, 0) for state in DocumentStatus.values}
    return snapshot_save(key="documents_by_state", data=data, now=now)
