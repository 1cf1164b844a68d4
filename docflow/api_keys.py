"""API keys across nodes: revoking one, and the shared stamp that tells every
process (on every node) to forget the keys it verified.

Each process keeps the keys it verified for a few seconds (``docflow.api.
authentication``). A change to a key, its service account or its organisation
bumps the stamp ``api_keys`` (a ``docflow.Stamp`` row) once its transaction
commits; every process reads the stamp at most every
DOCFLOW_API_KEY_STAMP_SECONDS and forgets what it verified when it moved, so a
revocation is refused everywhere within that bound. The stamp is in the database,
which every node shares (with or without Redis).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save

from audit.configuration_changes import (
    configuration_change_record,
    configuration_snapshot,
)
from docflow.models import ApiKey, SendingOrganisation, Stamp

API_KEYS_STAMP = "api_keys"


def api_keys_stamp() -> int:
    """The current value of the API-key stamp (0 before any change)."""
    value = (
        Stamp.objects.filter(name=API_KEYS_STAMP)
        .values_list("value", flat=True)
        .first()
    )
    return value or 0


def api_keys_stamp_bump() -> None:
    """Move the API-key stamp on (a short statement of its own: called once the
    change that caused it committed, so no transaction waits on the row)."""
    if Stamp.objects.filter(name=API_KEYS_STAMP).update(value=F("value") + 1):
        return
    try:
        with transaction.atomic():
            Stamp.objects.create(name=API_KEYS_STAMP, value=1)
    except IntegrityError:
        # Created meanwhile by another process: bump that one.
        Stamp.objects.filter(name=API_KEYS_STAMP).update(value=F("value") + 1)


def api_keys_stamp_bump_on_commit() -> None:
    """Bump the stamp once the surrounding transaction commits (now if none)."""
    transaction.on_commit(api_keys_stamp_bump)


def _stamp_bump_on_change(**kwargs) -> None:
    api_keys_stamp_bump_on_commit()


def api_keys_stamp_signals_connect() -> None:
    """Bump the stamp whenever a key, a user or an organisation is saved or
    deleted (in any process: called when the app is ready)."""
    for model in (ApiKey, SendingOrganisation, get_user_model()):
        for signal, verb in ((post_save, "saved"), (post_delete, "deleted")):
            signal.connect(
                _stamp_bump_on_change,
                sender=model,
                dispatch_uid=f"api-keys-stamp-{verb}-{model._meta.label}",
            )


@transaction.atomic
def api_key_revoke(*, prefix: str, actor: Any = None) -> ApiKey:
    """Revoke one API key, named by its public prefix (for good: a revoked key is
    never valid again), audited as a configuration change; every node refuses it
    within DOCFLOW_API_KEY_STAMP_SECONDS. Revoking a revoked key changes nothing."""
    api_key = ApiKey.objects.select_for_update().get(prefix=prefix)
    if api_key.revoked:
        return api_key
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    after = configuration_snapshot(api_key)
    configuration_change_record(
        instance=api_key,
        verb="changed",
        before={**after, "revoked": False},
        after=after,
        actor=actor,
    )
    return api_key
