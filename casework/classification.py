"""Which bucket, team, due date and next steps a problem gets, from reference data."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Q

from casework.models import Team, WorkItemBucket, WorkItemReason


@dataclass(frozen=True)
class Classification:
    """What a new (or reopened) item is told about its problem."""

    bucket: WorkItemBucket | None = None
    team: Team | None = None
    title: str = ""
    suggested_actions: list[str] = field(default_factory=list)
    is_clinical: bool = False

    def due_at(self, opened_at: datetime.datetime) -> datetime.datetime | None:
        if self.bucket is None:
            return None
        return opened_at + datetime.timedelta(hours=self.bucket.due_within_hours)


def work_item_reason_for(*, category: str, reason_code: str) -> WorkItemReason | None:
    """Exact code, else the longest matching prefix, else the category's fallback."""
    candidates = list(
        WorkItemReason.objects.select_related("bucket__default_team").filter(
            Q(code=reason_code, match_prefix=False)
            | Q(match_prefix=True)
            | Q(code="", category=category)
        )
    )
    if reason_code:
        for reason in candidates:
            if reason.code == reason_code and not reason.match_prefix:
                return reason
        prefixes = [
            reason
            for reason in candidates
            if reason.match_prefix
            and reason.code
            and reason_code.startswith(reason.code)
        ]
        if prefixes:
            return max(prefixes, key=lambda reason: len(reason.code))
    for reason in candidates:
        if reason.code == "" and reason.category == category:
            return reason
    return None


def work_item_classify(*, category: str, reason_code: str) -> Classification:
    """Bucket, default team, title, next steps and clinical flag for a problem."""
    reason = work_item_reason_for(category=category, reason_code=reason_code)
    if reason is None:
        return Classification()
    bucket = reason.bucket
    team = bucket.default_team
    return Classification(
        bucket=bucket,
        team=team if team is not None and team.is_active else None,
        title=reason.title,
        suggested_actions=[str(step) for step in reason.suggested_actions or []],
        is_clinical=reason.is_clinical,
    )
