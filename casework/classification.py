"""Which bucket, team, due date and next steps a problem gets, from reference data.

A reason arrives as a code (``REJ01``, ``DC01.09``, ``MESH-12``) or as the text a
practice's system sent (``Failed to Retrieve File (7006) at 12:03``). Both are
matched after normalising case, runs of white space and trailing punctuation:
exactly, else by the longest matching prefix (a prefix row, or an exact row the
text starts with, followed by a word break), else the reason is unknown.

An unknown reason never disappears: its item opens in the "needs classifying"
bucket, worked by the team (and with the steps and clinical flag) of its
category's fallback row, and due by the sooner of the two due rules; and
``needs_classifying`` is sent once per opened item, so that operations can raise
one low incident per unknown code. A problem with no reason at all (an empty
code) is not unknown: it takes its category's fallback row, as before.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from django.dispatch import Signal

from casework.models import (
    NEEDS_CLASSIFYING,
    Team,
    WorkItem,
    WorkItemBucket,
    WorkItemReason,
)

# Sent (sender=WorkItem) with ``work_item``, ``category``, ``reason_code`` and
# ``actor`` when an item opens with a reason that matched no row. Receivers run in
# the opening transaction; operations connects one that raises a low incident.
needs_classifying = Signal()

# Stored for a free-text reason that matched nothing: the text itself may hold
# patient details, so it is never written to the item, the audit trail or a log.
UNRECOGNISED_TEXT = "UNRECOGNISED_TEXT"

# A code is one token of letters, digits and a little punctuation; anything else
# (spaces, long text) is free text and is only ever kept as a matched row's code.
_CODE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._()\-]{0,63}")
_TRAILING_PUNCTUATION = ".,;:!?"
_SPACES = re.compile(r"\s+")


def reason_normalise(text: str) -> str:
    """The matching form of a code or reason: case-folded, single spaces, no
    trailing punctuation."""
    return (
        _SPACES.sub(" ", text).strip().rstrip(_TRAILING_PUNCTUATION).strip().casefold()
    )


def _is_code(text: str) -> bool:
    return bool(_CODE_SHAPE.fullmatch(text))


@dataclass(frozen=True)
class Classification:
    """What a new (or reopened) item is told about its problem."""

    bucket: WorkItemBucket | None = None
    team: Team | None = None
    title: str = ""
    suggested_actions: list[str] = field(default_factory=list)
    is_clinical: bool = False
    action_class: str = ""
    # The reason matched no row (the bucket is "needs classifying").
    needs_classifying: bool = False
    # Overrides the bucket's rule (the sooner of two rules for an unknown reason).
    due_within_hours: int | None = None

    def due_at(self, opened_at: datetime.datetime) -> datetime.datetime | None:
        hours = self.due_within_hours
        if hours is None:
            if self.bucket is None:
                return None
            hours = self.bucket.due_within_hours
        return opened_at + datetime.timedelta(hours=hours)


def _match(reasons: list[WorkItemReason], reason_code: str) -> WorkItemReason | None:
    wanted = reason_normalise(reason_code)
    if not wanted:
        return None
    coded = [
        (reason_normalise(reason.code), reason) for reason in reasons if reason.code
    ]
    for code, reason in coded:
        if code == wanted and not reason.match_prefix:
            return reason
    starts = []
    for code, reason in coded:
        if not wanted.startswith(code):
            continue
        rest = wanted[len(code) :]
        # A prefix row matches every code it starts (DC01 -> DC01.09, ITK-1 ->
        # ITK-10001); an exact row only text it starts as a whole word
        # ("REJ01 - Patient ...", never "REJ010").
        if reason.match_prefix or not rest or not rest[0].isalnum():
            starts.append((len(code), reason))
    if starts:
        return max(starts, key=lambda pair: pair[0])[1]
    return None


def work_item_reason_for(*, category: str, reason_code: str) -> WorkItemReason | None:
    """Exact code, else the longest matching prefix, else the category's fallback
    (matching is by normalised text, see ``reason_normalise``)."""
    reasons = list(WorkItemReason.objects.select_related("bucket__default_team"))
    matched = _match(reasons, reason_code)
    if matched is not None:
        return matched
    for reason in reasons:
        if reason.code == "" and reason.category == category:
            return reason
    return None


def reason_code_from_answer(*, code: str, text: str) -> str:
    """The code to record for a reason an outside system sent: its code when it has
    one, else the code of the row its text matches, else ``UNRECOGNISED_TEXT``.
    Free text is never returned, as it may name the patient."""
    code = (code or "").strip()
    if code and _is_code(code):
        return code
    reasons = list(WorkItemReason.objects.exclude(code=""))
    for candidate in (code, text or ""):
        matched = _match(reasons, candidate)
        if matched is not None:
            return matched.code
    if code or (text or "").strip():
        return UNRECOGNISED_TEXT
    return ""


def work_item_classify(*, category: str, reason_code: str) -> Classification:
    """Bucket, default team, title, next steps, action class and clinical flag for
    a problem; an unknown reason goes to "needs classifying", never dropped."""
    reasons = list(WorkItemReason.objects.select_related("bucket__default_team"))
    matched = _match(reasons, reason_code)
    fallback = next(
        (r for r in reasons if r.code == "" and r.category == category), None
    )
    if matched is None and reason_normalise(reason_code):
        return _needs_classifying(reason_code, fallback)
    reason = matched or fallback
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
        action_class=reason.action_class,
    )


def _needs_classifying(
    reason_code: str, fallback: WorkItemReason | None
) -> Classification:
    bucket = (
        WorkItemBucket.objects.select_related("default_team")
        .filter(key=NEEDS_CLASSIFYING)
        .first()
    )
    source = fallback.bucket if fallback is not None else bucket
    team = source.default_team if source is not None else None
    if team is None and bucket is not None:
        team = bucket.default_team
    hours = [b.due_within_hours for b in (bucket, source) if b is not None]
    steps = [
        f"Ask a system admin to classify the reason {reason_code} (Admin, "
        "Work item reasons): bucket, steps and action class."
        if reason_code != UNRECOGNISED_TEXT
        else "Read the practice's reason in Connect (its text is not kept here, as "
        "it may name the patient), and ask a system admin to classify it.",
        *[str(step) for step in (fallback.suggested_actions if fallback else [])],
    ]
    return Classification(
        bucket=bucket or source,
        team=team if team is not None and team.is_active else None,
        title=f"Reason not classified yet: {reason_code}"[:200],
        suggested_actions=steps,
        # Until somebody says otherwise an unknown rejection is the practice's
        # decision: never closed automatically.
        is_clinical=fallback.is_clinical if fallback is not None else True,
        needs_classifying=True,
        due_within_hours=min(hours) if hours else None,
    )


def work_item_report_needs_classifying(*, work_item: WorkItem, actor: Any) -> None:
    """Tell the listeners (operations: one low incident per unknown code) that an
    item opened with a reason no row matched."""
    needs_classifying.send(
        sender=WorkItem,
        work_item=work_item,
        category=work_item.category,
        reason_code=work_item.reason_code,
        actor=actor,
    )
