"""django-q2 entry points for casework: thin, idempotent, safe to run twice."""

from __future__ import annotations

from casework.counting import work_item_counts_compact


def compact_work_item_counts() -> int:
    """Fold the queue's appended count changes into one row per key."""
    return work_item_counts_compact()
