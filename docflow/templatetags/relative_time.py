"""Times as staff read them: "3 hours ago", "in 2 days", "overdue by 5 hours"
(the largest unit only, so a table cell stays short)."""

from __future__ import annotations

import datetime

from django import template
from django.utils.timesince import timesince

register = template.Library()

MINUTE = datetime.timedelta(minutes=1)


def _span(earlier: datetime.datetime, later: datetime.datetime) -> str:
    if later - earlier < MINUTE:
        return "less than a minute"
    return timesince(earlier, later, depth=1)


@register.filter
def ago(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    """How long before ``now`` the moment was: "3 hours ago"."""
    if moment is None:
        return ""
    if moment > now:
        return f"in {_span(now, moment)}"
    return f"{_span(moment, now)} ago"


@register.filter
def due_in(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    """How soon a due date comes: "in 5 hours" (or "overdue by 2 hours")."""
    if moment is None:
        return ""
    if moment < now:
        return f"overdue by {_span(moment, now)}"
    return f"in {_span(now, moment)}"


@register.filter
def overdue_by(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    """How long ago a due date passed: "2 hours" ("" when it has not)."""
    if moment is None or moment >= now:
        return ""
    return _span(moment, now)
