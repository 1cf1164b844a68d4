"""Connect's directory: whether a destination is served, before and between sends.

Before a send, a destination we last verified longer ago than
DOCFLOW_DESTINATION_TTL_SECONDS is looked up again (``destination_refusal``: DC02
inactive, DC03 not receiving). Between sends, ``organisations_reconcile``
re-checks the destinations documents wait for, and stale entries; one that turned
inactive holds its ready documents (one work item each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from docflow.directory import organisation_record_lookup
from docflow.models import (
    Channel,
    DestinationProfile,
    Document,
    DocumentStatus,
    Organisation,
    SendingOrganisation,
)
from docflow.services import TransitionRefused
from transmissions.channels.connect.client import ConnectClient
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
)
from transmissions.engine.moves import document_move
from transmissions.engine.outcomes import credentials_halt

S = DocumentStatus


def destination_refusal(document: Document, client: ConnectClient) -> str | None:
    """Re-check the destination when our knowledge of it is older than the TTL.

    Returns a hold reason code (DC02 inactive, DC03 not receiving) or None.
    """
    destination = document.destination
    ttl = timedelta(seconds=settings.DOCFLOW_DESTINATION_TTL_SECONDS)
    if (
        destination is not None
        and destination.last_verified_at is not None
        and timezone.now() - destination.last_verified_at < ttl
    ):
        return None if destination.is_active else "DC02"
    found = client.organisation(document.destination_ods_code)
    organisation_record_lookup(
        ods_code=document.destination_ods_code,
        found=found is not None,
        is_active=bool(found and found.is_active),
        is_receiving=bool(found and found.is_receiving),
        endpoint_type=found.endpoint_type if found else "",
        name=found.name if found else "",
    )
    if found is None or not found.is_active:
        return "DC02"
    if not found.is_receiving:
        return "DC03"
    return None


@dataclass(frozen=True)
class DirectoryCheck:
    """What one reconciliation run checked, found inactive and held."""

    checked: int
    inactive: int
    held: int


def organisations_reconcile(
    *, stale_after_seconds: int = 86400, limit: int = 200, actor: Any = None
) -> DirectoryCheck:
    """Re-check destinations that documents are waiting for, and stale entries; a
    destination that turned inactive holds its ready documents (one work item each)."""
    stale = timezone.now() - timedelta(seconds=stale_after_seconds)
    checked = inactive = held = 0
    # Practices reached over another channel (MESH) are not in Connect's directory:
    # asking Connect about them would mark them inactive and hold their documents.
    elsewhere = DestinationProfile.objects.exclude(channel=Channel.CONNECT).values(
        "endpoint_type"
    )
    over_mesh = set(
        Organisation.objects.filter(endpoint_type__in=elsewhere).values_list(
            "ods_code", flat=True
        )
    )
    for organisation in SendingOrganisation.objects.filter(is_active=True).exclude(
        connect_client_id=""
    ):
        waiting = set(
            Document.objects.filter(
                sending_organisation=organisation, status__in=(S.READY, S.SUBMITTED)
            )
            .values_list("destination_ods_code", flat=True)
            .distinct()[:limit]
        )
        codes = waiting | set(
            Organisation.objects.filter(
                Q(last_verified_at__lt=stale) | Q(last_verified_at__isnull=True)
            ).values_list("ods_code", flat=True)[:limit]
        )
        client = connect_client_for(organisation)
        for ods_code in sorted(codes - over_mesh):
            try:
                found = client.organisation(ods_code)
            except (ConnectAuthFailed, ConnectConfigurationError) as exc:
                credentials_halt(sending_organisation=organisation, error=exc)
                break
            except ConnectError:
                break
            checked += 1
            record = organisation_record_lookup(
                ods_code=ods_code,
                found=found is not None,
                is_active=bool(found and found.is_active),
                is_receiving=bool(found and found.is_receiving),
                endpoint_type=found.endpoint_type if found else "",
                name=found.name if found else "",
                actor=actor,
            )
            if record.is_active:
                continue
            inactive += 1
            code = "DC03" if found and found.is_active else "DC02"
            held += _hold_ready_for(organisation, ods_code, code, actor)
        codes.clear()
    return DirectoryCheck(checked=checked, inactive=inactive, held=held)


def _hold_ready_for(
    organisation: SendingOrganisation, ods_code: str, code: str, actor: Any
) -> int:
    held = 0
    for document_id in Document.objects.filter(
        sending_organisation=organisation,
        destination_ods_code=ods_code,
        status=S.READY,
    ).values_list("pk", flat=True):
        with transaction.atomic():
            try:
                document_move(
                    document=Document(pk=document_id),
                    transition="hold_before_send",
                    reason=code,
                    data={"destination": ods_code, "found_by": "reconciliation"},
                    actor=actor,
                )
            except TransitionRefused:
                continue
        held += 1
    return held
