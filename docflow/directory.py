"""Writes to the destination directory (Organisation rows) from live lookups."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from docflow.models import Organisation, OrganisationSource, OrganisationStatus


@transaction.atomic
def organisation_record_lookup(
    *,
    ods_code: str,
    found: bool,
    is_active: bool = False,
    is_receiving: bool = False,
    endpoint_type: str = "",
    name: str = "",
    actor: Any = None,
) -> Organisation:
    """Record what a live directory lookup said; a change of status, endpoint type
    or name is audited.

    A destination Connect does not know, or knows as not receiving, is kept as
    inactive: nothing may be sent to it until a later lookup says otherwise.
    """
    organisation, created = Organisation.objects.select_for_update().get_or_create(
        ods_code=ods_code,
        defaults={
            "name": name or ods_code,
            "source": OrganisationSource.CONNECT_LOOKUP,
            "status": OrganisationStatus.INACTIVE,
        },
    )
    status = (
        OrganisationStatus.ACTIVE
        if found and is_active and is_receiving
        else OrganisationStatus.INACTIVE
    )
    previous = None if created else organisation.status
    organisation.status = status
    organisation.last_verified_at = timezone.now()
    fields = ["status", "last_verified_at"]
    changes = {}
    if found and endpoint_type and endpoint_type != organisation.endpoint_type:
        changes["endpoint_type"] = {
            "before": organisation.endpoint_type,
            "after": endpoint_type,
        }
        organisation.endpoint_type = endpoint_type
        fields.append("endpoint_type")
    if found and name and not created and name != organisation.name:
        changes["name"] = {"before": organisation.name, "after": name}
        organisation.name = name
        fields.append("name")
    organisation.save(update_fields=fields)
    if changes and not created:
        # Where documents for this practice go, and what staff see it called.
        audit_record(
            action="organisation.directory_changed",
            target_type="organisation",
            target_id=ods_code,
            data={"changes": changes},
            actor=actor,
        )
    if previous != status:
        audit_record(
            action="organisation.status_changed",
            target_type="organisation",
            target_id=ods_code,
            data={
                "from": previous,
                "to": status,
                "found": found,
                "active": is_active,
                "receiving": is_receiving,
            },
            actor=actor,
        )
    return organisation
