"""What each rehearsal breaks at the simulator, how it undoes it, and what it
expects to happen: incidents (kind, scope), work items per category, halts and
destination pauses."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings

from docflow.configuration import read_secret
from docflow.models import DestinationProfile, Document, SendingOrganisation
from operations.models import IncidentKind
from operations.rehearsals.simulator import SimulatorControl
from operations.watched import threshold_for
from transmissions.channels.connect.client import TOKENS
from transmissions.channels.connect.connections import connect_clients_close
from transmissions.models import HaltKind

SOURCE_SYSTEM = "rehearsal"
# Destinations that exist only for rehearsals (in the simulator and our directory).
REHEARSAL_ENDPOINT_TYPE = "docman10"
# 999 000 0000 - 999 999 9999 pass the modulus 11 check but are never issued.
REHEARSAL_NHS_NUMBER = "9990000018"


@dataclass
class Context:
    """One rehearsal run: who sends, the simulator, what was made."""

    organisation: SendingOrganisation
    simulator: SimulatorControl
    started_at: datetime.datetime
    documents: list[Document] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    incidents: frozenset[tuple[str, str]] = frozenset()
    work_items: tuple[tuple[str, int], ...] = ()
    halts: frozenset[str] = frozenset()
    paused: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    destination: str
    documents: int
    expected: Callable[[Context], Expected]
    behaviour: str = "accept"
    document_size: int = 0
    # How far ahead of now the watch looks (time the rehearsal cannot wait for).
    clock_ahead: Callable[[], timedelta] = lambda: timedelta(0)
    # What cutting the link or the credentials means; undone by `restore`.
    break_link: Callable[[Context], None] | None = None
    restore_link: Callable[[Context], None] | None = None
    settle: bool = True


def _rotate_credentials(ctx: Context) -> None:
    """Connect gets a new secret for our client; ours is now the old one."""
    ctx.simulator.client_secret_set(
        client_id=ctx.organisation.connect_client_id,
        secret=f"rotated-{uuid.uuid4().hex}",
        sending_ods_code=ctx.organisation.ods_code,
    )


def _restore_credentials(ctx: Context) -> None:
    ctx.simulator.client_secret_set(
        client_id=ctx.organisation.connect_client_id,
        secret=read_secret(ctx.organisation.connect_secret_ref),
        sending_ods_code=ctx.organisation.ods_code,
    )
    TOKENS.clear()


def _cut_connect(ctx: Context) -> None:
    """Connect goes down: every call answers 503."""
    ctx.simulator.outage_set(down=True)
    connect_clients_close()


def _restore_connect(ctx: Context) -> None:
    ctx.simulator.outage_set(down=False)
    connect_clients_close()


def _delivered_threshold() -> timedelta:
    profile = DestinationProfile.objects.get(endpoint_type=REHEARSAL_ENDPOINT_TYPE)
    seconds = max(
        threshold_for(profile, "received") or 0,
        threshold_for(profile, "delivered") or 0,
    )
    return timedelta(seconds=seconds + 60)


def _org_scope(kind: str):
    return lambda ctx: f"{kind}:{ctx.organisation.ods_code}"


SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            name="destination-inactive",
            description="A practice closed at Connect while our directory says active",
            destination="A89901",
            behaviour="inactive",
            documents=2,
            expected=lambda ctx: Expected(
                incidents=frozenset({(IncidentKind.DESTINATION_REFUSING, "A89901")}),
                work_items=(("preflight", 2),),
            ),
        ),
        Scenario(
            name="conversion-oversize",
            description="The practice's system takes less than the document's size",
            destination="A89902",
            behaviour="size_limit:2000",
            document_size=8000,
            documents=1,
            expected=lambda ctx: Expected(work_items=(("preflight", 1),)),
        ),
        Scenario(
            name="widespread-rejection",
            description="A practice rejects everything it is sent",
            destination="A89903",
            behaviour="reject:REJ01",
            documents=5,
            expected=lambda ctx: Expected(
                incidents=frozenset(
                    {(IncidentKind.REJECTION_SURGE, "destination:A89903")}
                ),
                work_items=(("rejection", 5),),
            ),
        ),
        Scenario(
            name="delayed-acknowledgements",
            description="A practice takes documents and never files them",
            destination="A89904",
            behaviour="never_ack",
            documents=3,
            clock_ahead=_delivered_threshold,
            expected=lambda ctx: Expected(
                incidents=frozenset(
                    {(IncidentKind.DESTINATION_UNACKNOWLEDGED, "A89904")}
                ),
                paused=frozenset({"A89904"})
                if settings.DOCFLOW_OPS_AUTO_PAUSE_DESTINATIONS
                else frozenset(),
            ),
        ),
        Scenario(
            name="credential-rotation",
            description="Connect's secret for our client changed; ours did not",
            destination="A89905",
            documents=1,
            break_link=_rotate_credentials,
            restore_link=_restore_credentials,
            settle=False,
            expected=lambda ctx: Expected(
                incidents=frozenset(
                    {(IncidentKind.OUTBOUND_HALTED, _org_scope("token_failure")(ctx))}
                ),
                halts=frozenset({HaltKind.TOKEN_FAILURE}),
            ),
        ),
        Scenario(
            name="connect-outage",
            description="Connect goes down (every call answers 503)",
            destination="A89906",
            documents=0,  # the circuit threshold, decided at run time
            break_link=_cut_connect,
            restore_link=_restore_connect,
            settle=False,
            expected=lambda ctx: Expected(
                incidents=frozenset(
                    {(IncidentKind.OUTBOUND_HALTED, _org_scope("circuit_open")(ctx))}
                ),
                halts=frozenset({HaltKind.CIRCUIT_OPEN}),
            ),
        ),
    ]
}
