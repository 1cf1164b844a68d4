"""Edits of the classification reference data (reasons, buckets, teams), as made in
the admin: each save or delete is one audit event naming what changed."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from audit.services import audit_record
from casework.models import Team, WorkItemBucket, WorkItemReason


def _value(row: models.Model, field: models.Field) -> Any:
    value = getattr(row, field.attname)
    if isinstance(value, (str, int, bool, list, dict)) or value is None:
        return value
    return str(value)


def _fields(row: models.Model) -> list[models.Field]:
    return [f for f in row._meta.concrete_fields if not f.primary_key]


def _save(row: models.Model, *, entity: str, actor: Any) -> models.Model:
    before = None
    if row.pk is not None:
        before = type(row).objects.filter(pk=row.pk).first()
    created = before is None
    changes = {
        field.name: [None if created else _value(before, field), _value(row, field)]
        for field in _fields(row)
        if created or _value(before, field) != _value(row, field)
    }
    row.save()
    audit_record(
        action=f"{entity}.{'created' if created else 'changed'}",
        target_type=entity,
        target_id=str(row.pk),
        data={"label": str(row)[:200], "changes": changes},
        actor=actor,
    )
    return row


def _delete(row: models.Model, *, entity: str, actor: Any) -> None:
    label, pk = str(row)[:200], row.pk
    values = {field.name: _value(row, field) for field in _fields(row)}
    row.delete()
    audit_record(
        action=f"{entity}.deleted",
        target_type=entity,
        target_id=str(pk),
        data={"label": label, "values": values},
        actor=actor,
    )


@transaction.atomic
def work_item_reason_save(*, reason: WorkItemReason, actor: Any) -> WorkItemReason:
    """Create or change a reason; the audit event lists each changed field."""
    return _save(reason, entity="work_item_reason", actor=actor)


@transaction.atomic
def work_item_reason_delete(*, reason: WorkItemReason, actor: Any) -> None:
    """Delete a reason; the audit event keeps what it said."""
    _delete(reason, entity="work_item_reason", actor=actor)


@transaction.atomic
def work_item_bucket_save(*, bucket: WorkItemBucket, actor: Any) -> WorkItemBucket:
    """Create or change a bucket (team, due rule); audited per changed field."""
    return _save(bucket, entity="work_item_bucket", actor=actor)


@transaction.atomic
def work_item_bucket_delete(*, bucket: WorkItemBucket, actor: Any) -> None:
    """Delete a bucket nothing refers to; the audit event keeps what it said."""
    _delete(bucket, entity="work_item_bucket", actor=actor)


@transaction.atomic
def team_save(*, team: Team, actor: Any) -> Team:
    """Create or change a team; audited per changed field."""
    return _save(team, entity="team", actor=actor)


@transaction.atomic
def team_delete(*, team: Team, actor: Any) -> None:
    """Delete a team nothing refers to; the audit event keeps what it said."""
    _delete(team, entity="team", actor=actor)
