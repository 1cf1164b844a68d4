"""Configuration changes made in the admin, each an audited service call.

Every admin save, add and delete of a configuration object (destination profiles,
organisations, sending organisations, API keys, MESH mailboxes, users, groups and
their permissions) records who, when, and the before/after of the fields that
changed, in the save's own transaction. Secret fields are never recorded: only
their names, when they changed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from audit.models import AuditEvent
from audit.services import audit_record

SECRET_FIELD = re.compile(
    r"password|secret|hashed_key|token|private|credential|passphrase|^key$|_key$",
    re.IGNORECASE,
)


MASKED = "[masked]"


def _target_id(instance: models.Model, snapshot: dict[str, Any]) -> str:
    """The object's key in the trail (from the snapshot: a deleted object has lost
    its pk); an API key by its public prefix, because its primary key embeds the
    key's hash."""
    prefix = getattr(instance, "prefix", None)
    if prefix:
        return str(prefix)
    return str(snapshot.get(instance._meta.pk.name) or instance.pk)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def configuration_snapshot(instance: models.Model) -> dict[str, Any]:
    """The object's concrete and many-to-many field values as JSON (secrets as a
    marker that cannot be reversed to the value)."""
    snapshot: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        value = field.value_from_object(instance)
        snapshot[field.name] = _plain(value)
    # A field that embeds a secret (an API key's id holds its hash) is masked too.
    secret_values = [
        str(value)
        for name, value in snapshot.items()
        if SECRET_FIELD.search(name) and value and len(str(value)) >= 8
    ]
    for name, value in snapshot.items():
        if any(secret in str(value) for secret in secret_values):
            snapshot[name] = MASKED if not SECRET_FIELD.search(name) else value
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            snapshot[field.name] = sorted(
                _plain(pk)
                for pk in getattr(instance, field.name).values_list("pk", flat=True)
            )
    return snapshot


def _changes(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    changes: dict[str, dict[str, Any]] = {}
    secrets_changed: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if SECRET_FIELD.search(name):
            secrets_changed.append(name)
            continue
        changes[name] = {"before": old, "after": new}
    return changes, secrets_changed


@transaction.atomic(savepoint=False)
def configuration_change_record(
    *,
    instance: models.Model,
    verb: str,
    before: dict[str, Any],
    after: dict[str, Any],
    actor: Any,
) -> AuditEvent:
    """Chain one ``configuration.<verb>`` event with the changed fields' before and
    after values (``verb``: added, changed or deleted); secrets by name only."""
    changes, secrets_changed = _changes(before, after)
    data: dict[str, Any] = {
        "model": instance._meta.label_lower,
        "object": str(instance)[:150],
        "changes": changes,
    }
    if secrets_changed:
        data["secret_fields_changed"] = secrets_changed
    return audit_record(
        action=f"configuration.{verb}",
        target_type=instance._meta.label_lower,
        target_id=_target_id(instance, before or after)[:64],
        data=data,
        actor=actor,
    )


class ConfigurationChangeAuditMixin:
    """ModelAdmin mixin: saves (after their many-to-many fields), adds and deletes,
    single or bulk, each write one ``configuration.*`` audit event. The admin's
    change and delete views are atomic, so the event commits with the change."""

    def save_model(self, request, obj, form, change):
        before = {}
        if change and obj.pk is not None:
            stored = type(obj)._base_manager.filter(pk=obj.pk).first()
            before = configuration_snapshot(stored) if stored is not None else {}
        request._configuration_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        configuration_change_record(
            instance=obj,
            verb="changed" if change else "added",
            before=getattr(request, "_configuration_before", {}),
            after=configuration_snapshot(obj),
            actor=request.user,
        )

    def delete_model(self, request, obj):
        before = configuration_snapshot(obj)
        with transaction.atomic():
            super().delete_model(request, obj)
            configuration_change_record(
                instance=obj,
                verb="deleted",
                before=before,
                after={},
                actor=request.user,
            )

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)
