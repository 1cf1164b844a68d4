"""Snapshots of costly figures, taken by the scheduled watch."""

from __future__ import annotations

from django.utils import timezone

from operations.models import Snapshot
from operations.selectors import documents_by_state_count


def snapshot_save(*, key: str, data: dict, now=None) -> Snapshot:
    """Replace the snapshot under ``key`` (the last writer wins; it is only a cache of
    figures any run can recount)."""
    snapshot, _ = Snapshot.objects.update_or_create(
        key=key, defaults={"data": data, "taken_at": now or timezone.now()}
    )
    return snapshot


def documents_by_state_snapshot_take(*, now=None) -> Snapshot:
    """Count documents by state once for every page view and scrape until the next."""
    return snapshot_save(
        key="documents_by_state", data=documents_by_state_count(), now=now
    )
