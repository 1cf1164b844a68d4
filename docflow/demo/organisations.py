"""Demo reference data: the two sending trusts and the practices they send to (the
Connect simulator's demo practices, every endpoint type, one inactive, one without an
endpoint, one reached over MESH)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from docflow.demo.context import DemoContext
from docflow.models import (
    EndpointType,
    Organisation,
    OrganisationSource,
    OrganisationStatus,
    SendingOrganisation,
)

SENDING_ORGANISATIONS = [
    ("RX1", "Northshire Hospitals NHS Foundation Trust"),
    ("RY2", "Southvale Community Trust"),
]

# The same practices as the Connect simulator's demo scenario, so that documents
# sent to them meet the matching behaviour (accept, reject, inactive, ...).
ACTIVE, INACTIVE = OrganisationStatus.ACTIVE, OrganisationStatus.INACTIVE
DESTINATIONS = [
    ("A81001", "Riverside Surgery", EndpointType.DOCMAN10, ACTIVE),
    ("A81002", "Hillview Medical Centre", EndpointType.DOCMAN7, ACTIVE),
    ("A81003", "Parkside Practice", EndpointType.EMIS_MESH, ACTIVE),
    ("A81004", "Meadow Lane Surgery", EndpointType.TPP_MESH, ACTIVE),
    ("A81005", "Old Mill Practice", EndpointType.DOCMAN10, ACTIVE),
    ("A81006", "Closed Road Surgery", EndpointType.DOCMAN10, INACTIVE),
    # Known to ODS but not a receiving organisation: no endpoint at all.
    ("A81007", "Community Dental Service", "", ACTIVE),
    ("A81008", "Harbour Health Centre", EndpointType.DOCMAN10, ACTIVE),
    ("A81009", "Station Road Practice", EndpointType.DOCMAN10, ACTIVE),
    ("A81010", "Castle Street Surgery", EndpointType.DOCMAN10, ACTIVE),
    ("A81011", "Green Lanes Practice", EndpointType.DOCMAN10, ACTIVE),
    ("A81012", "Quarry Hill Surgery", EndpointType.DOCMAN10, ACTIVE),
    ("A81013", "Small Box Practice", EndpointType.DOCMAN7, ACTIVE),
    ("A81014", "Brookside Surgery", EndpointType.DOCMAN10, ACTIVE),
    # Reached over MESH, not Connect: the local MESH sandbox's test practice.
    ("X26", "Sandbox Surgery (over MESH)", "gp_mesh", ACTIVE),
]


@transaction.atomic
def demo_sending_organisations_seed(context: DemoContext) -> None:
    """Each demo trust once, with its Connect client id and secret reference."""
    for ods_code, name in SENDING_ORGANISATIONS:
        organisation, created = SendingOrganisation.objects.get_or_create(
            ods_code=ods_code,
            defaults={
                "name": name,
                "connect_client_id": f"client-{ods_code}",
                "connect_secret_ref": f"CONNECT_SECRET_{ods_code}",
            },
        )
        context.senders[ods_code] = organisation
        context.say(f"  sending organisation {organisation} {verb(created)}")


@transaction.atomic
def demo_destinations_seed(context: DemoContext) -> None:
    """Each demo practice once, as entered by hand (not from ODS)."""
    created_count = 0
    for ods_code, name, endpoint_type, status in DESTINATIONS:
        _, created = Organisation.objects.get_or_create(
            ods_code=ods_code,
            defaults={
                "name": name,
                "endpoint_type": endpoint_type,
                "status": status,
                "source": OrganisationSource.MANUAL,
                "last_verified_at": timezone.now(),
            },
        )
        created_count += created
    context.say(
        f"  destinations: {len(DESTINATIONS)} "
        f"({created_count} created, every endpoint type, one inactive, "
        "one without an endpoint)"
    )


def verb(created: bool) -> str:
    return "created" if created else "already exists"
