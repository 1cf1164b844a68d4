"""Demo accounts: a superuser, one user of every role, and one API key per sending
organisation (its raw value kept owner-only in var/, so a second run reuses it)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm

from docflow.demo.context import DemoContext
from docflow.demo.organisations import verb
from docflow.models import ApiKey

# Printed, and only ever set on a development machine (see seed_demo's handle()).
DEMO_PASSWORD = "docflow-demo-password"  # noqa: S105
ACCESS_DOCUMENTS = "docflow.access_documents"
API_KEY_NAME = "Demo EPR"


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    first_name: str
    last_name: str
    is_staff: bool = False
    organisations: tuple[str, ...] = ()


USERS = [
    DemoUser("clinical.admin", "Clinical admin", "Casey", "Clark", False, ("RX1",)),
    DemoUser("clinical.admin.ry2", "Clinical admin", "Robin", "Reed", False, ("RY2",)),
    DemoUser("ig.officer", "IG officer", "Imogen", "Grant", True, ("RX1", "RY2")),
    DemoUser(
        "integration.operator",
        "Integration operator",
        "Ollie",
        "Price",
        True,
        ("RX1", "RY2"),
    ),
    DemoUser("system.admin", "System admin", "Sam", "Adams", True),
]


def demo_users_seed(context: DemoContext) -> None:
    """The superuser and each demo user once, in their role's group, granted their
    organisations' documents."""
    user_model = get_user_model()
    admin, created = user_model.objects.get_or_create(
        username="admin",
        defaults={
            "is_staff": True,
            "is_superuser": True,
            "email": "admin@example.invalid",
        },
    )
    if created:
        admin.set_password(DEMO_PASSWORD)
        admin.save(update_fields=["password"])
    context.users["admin"] = admin
    context.say(f"  user admin (superuser) {verb(created)}")
    for spec in USERS:
        user, created = user_model.objects.get_or_create(
            username=spec.username,
            defaults={
                "first_name": spec.first_name,
                "last_name": spec.last_name,
                "email": f"{spec.username}@example.invalid",
                "is_staff": spec.is_staff,
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name=spec.role))
        for ods_code in spec.organisations:
            assign_perm(ACCESS_DOCUMENTS, user, context.senders[ods_code])
        context.users[spec.username] = user
        context.say(f"  user {spec.username} ({spec.role}) {verb(created)}")


def _stored_keys(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@transaction.atomic
def demo_api_keys_seed(context: DemoContext) -> None:
    """One live key per sending organisation, its raw value kept in var/."""
    stored = _stored_keys(context.keys_path)
    user_model = get_user_model()
    api_client_group = Group.objects.get(name="API client")
    changed = False
    for ods_code, organisation in context.senders.items():
        service_user, _ = user_model.objects.get_or_create(
            username=f"svc-{ods_code.lower()}-epr",
            defaults={"first_name": "EPR", "last_name": ods_code},
        )
        if service_user.has_usable_password():
            service_user.set_unusable_password()
            service_user.save(update_fields=["password"])
        service_user.groups.add(api_client_group)
        entry = stored.get(ods_code) or {}
        raw = entry.get("key", "")
        existing = ApiKey.objects.filter(
            sending_organisation=organisation,
            prefix=raw.partition(".")[0],
            revoked=False,
        ).first()
        if existing is not None and existing.is_valid(raw):
            context.api_keys[ods_code] = (existing, raw)
            context.say(f"  API key for {ods_code}: already exists")
            continue
        # The raw key is lost (or never made): retire old demo keys, make one.
        ApiKey.objects.filter(
            sending_organisation=organisation, name=API_KEY_NAME, revoked=False
        ).update(revoked=True)
        api_key, raw = ApiKey.objects.create_key(
            name=API_KEY_NAME, sending_organisation=organisation, user=service_user
        )
        stored[ods_code] = {"prefix": api_key.prefix, "key": raw}
        changed = True
        context.api_keys[ods_code] = (api_key, raw)
        context.say(f"  API key for {ods_code}: created")
    if changed:
        _write_private_json(context.keys_path, stored)


def _write_private_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
