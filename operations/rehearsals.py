"""Rehearsals: drive the Connect simulator into one failure, run the pipeline, check
that the expected incidents, work items and halts happened (one alert per incident
opening), then restore normal behaviour.

Only against the simulator on loopback: its control API (/_sim) does not exist at
Connect, and a rehearsal must never touch real practices.
"""

from __future__ import annotations

import datetime
import io
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db.models import Q
from django.test.utils import override_settings
from django.utils import timezone

from casework.models import WorkItem
from docflow.configuration import read_secret
from docflow.models import (
    DestinationProfile,
    Document,
    Organisation,
    OrganisationStatus,
    SendingOrganisation,
)
from docflow.services import DocumentSubmission, document_submit
from operations.models import (
    DestinationPause,
    Incident,
    IncidentKind,
    IncidentState,
    NotificationEvent,
)
from operations.services.health import destination_pause_lift, destinations_watch
from operations.services.incidents import incident_resolve
from operations.services.surges import (
    outbound_halts_watch,
    rejection_surges_check,
    system_error_surge_check,
)
from operations.services.watchdog import watchdog_run
from operations.watched import threshold_for
from transmissions.connect.client import TOKENS
from transmissions.connections import connect_clients_close
from transmissions.models import HaltKind, OutboundHalt
from transmissions.services.controls import outbound_halt_close
from transmissions.services.pipeline import document_prepare_for_sending
from transmissions.services.sending import document_send
from transmissions.services.tracking import changes_feed_read

SOURCE_SYSTEM = "rehearsal"
# Destinations that exist only for rehearsals (in the simulator and our directory).
REHEARSAL_ENDPOINT_TYPE = "docman10"
# 999 000 0000 - 999 999 9999 pass the modulus 11 check but are never issued.
REHEARSAL_NHS_NUMBER = "9990000018"


class RehearsalRefused(Exception):
    """The rehearsal cannot run here (not the simulator, no such scenario)."""


def rehearsal_pdf(size: int = 0) -> bytes:
    """A minimal valid one-page PDF, padded with a comment to ``size`` bytes."""
    content = b"BT /F1 12 Tf 72 720 Td (Rehearsal) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    if size:
        out.write(b"%" + b"x" * max(0, size - 600) + b"\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


@dataclass
class Context:
    """One rehearsal run: who sends, where the simulator is, what was made."""

    organisation: SendingOrganisation
    simulator_url: str
    started_at: datetime.datetime
    documents: list[Document] = field(default_factory=list)
    saved: dict = field(default_factory=dict)

    def sim(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(
            method, f"{self.simulator_url}{path}", timeout=10, **kwargs
        )
        response.raise_for_status()
        return response


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
    ctx.sim(
        "PUT",
        f"/_sim/clients/{ctx.organisation.connect_client_id}",
        json={
            "client_secret": f"rotated-{uuid.uuid4().hex}",
            "sending_ods_code": ctx.organisation.ods_code,
        },
    )


def _restore_credentials(ctx: Context) -> None:
    secret = read_secret(ctx.organisation.connect_secret_ref)
    ctx.sim(
        "PUT",
        f"/_sim/clients/{ctx.organisation.connect_client_id}",
        json={"client_secret": secret, "sending_ods_code": ctx.organisation.ods_code},
    )
    TOKENS.clear()


def _unreachable_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _cut_connect(ctx: Context) -> None:
    """Connect stops answering: the route to it leads nowhere."""
    ctx.saved["override"] = override_settings(
        DOCFLOW_CONNECT_BASE_URL=_unreachable_url()
    )
    ctx.saved["override"].enable()
    connect_clients_close()


def _restore_connect(ctx: Context) -> None:
    override = ctx.saved.pop("override", None)
    if override is not None:
        override.disable()
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
            description="Connect stops answering",
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


def check_simulator(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise RehearsalRefused(
            f"Connect is at {host}: rehearsals run only against the simulator on "
            "loopback."
        )
    try:
        httpx.get(f"{url}/_sim/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise RehearsalRefused(
            f"No Connect simulator answers at {url} ({type(exc).__name__})."
        ) from exc


def rehearsal_begin(
    scenario: Scenario,
    *,
    organisation: SendingOrganisation,
    simulator_url: str,
    break_link: bool = True,
) -> Context:
    """Make the rehearsal destination known to both sides, then break it (the link
    too, unless the caller breaks it another way)."""
    check_simulator(simulator_url)
    ctx = Context(
        organisation=organisation,
        simulator_url=simulator_url,
        started_at=timezone.now(),
    )
    Organisation.objects.update_or_create(
        ods_code=scenario.destination,
        defaults={
            "name": f"Rehearsal practice {scenario.destination}",
            "endpoint_type": REHEARSAL_ENDPOINT_TYPE,
            "status": OrganisationStatus.ACTIVE,
            "last_verified_at": None,
        },
    )
    ctx.sim(
        "PUT",
        f"/_sim/organisations/{scenario.destination}",
        json={
            "name": f"Rehearsal practice {scenario.destination}",
            "endpoint_type": REHEARSAL_ENDPOINT_TYPE,
            "behaviour": scenario.behaviour,
        },
    )
    if break_link and scenario.break_link is not None:
        scenario.break_link(ctx)
    return ctx


def rehearsal_documents_count(scenario: Scenario) -> int:
    return scenario.documents or settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD


def rehearsal_submit(scenario: Scenario, ctx: Context) -> list[Document]:
    """Submit the rehearsal's documents through intake (metadata of a test patient)."""
    content = rehearsal_pdf(scenario.document_size)
    for _ in range(rehearsal_documents_count(scenario)):
        document, _ = document_submit(
            sending_organisation=ctx.organisation,
            source_system=SOURCE_SYSTEM,
            idempotency_key=f"{scenario.name}-{uuid.uuid4().hex}",
            submission=DocumentSubmission(
                nhs_number=REHEARSAL_NHS_NUMBER,
                patient_family_name="Rehearsal",
                patient_birth_date=datetime.date(1970, 1, 1),
                document_type="other",
                description=f"Rehearsal: {scenario.name}",
                event_date=timezone.now().date(),
                destination_ods_code=scenario.destination,
                content=content,
                declared_extension="pdf",
            ),
        )
        ctx.documents.append(document)
    return ctx.documents


def rehearsal_drive(scenario: Scenario, ctx: Context, *, timeout: float) -> None:
    """Run the pipeline in this process: prepare and send each document, then read
    Connect's answers until the documents settle (or the timeout)."""
    for document in ctx.documents:
        prepared = document_prepare_for_sending(
            document_id=document.pk, queue_sends=False
        )
        for sendable in prepared.sendable:
            document_send(document_id=sendable.pk)
    if not scenario.settle:
        return
    deadline = time.monotonic() + timeout
    moving = {"ready", "sending", "submitted"}
    while time.monotonic() < deadline:
        changes_feed_read(sending_organisation_id=ctx.organisation.pk)
        states = set(
            Document.objects.filter(pk__in=[d.pk for d in ctx.documents]).values_list(
                "status", flat=True
            )
        )
        if scenario.behaviour == "never_ack":
            done = not states & (moving | {"received"})
        else:
            done = not states & (moving | {"received", "delivered"})
        if done:
            return
        time.sleep(0.5)


def operations_watch(*, now=None) -> None:
    """Everything the scheduled operations watch does, at ``now``."""
    watchdog_run(now=now)
    system_error_surge_check(now=now)
    rejection_surges_check(now=now)
    outbound_halts_watch()
    destinations_watch(now=now)


@dataclass
class Outcome:
    incidents: dict[tuple[str, str], Incident]
    work_items: Counter
    halts: set[str]
    paused: set[str]
    opened_alerts: dict[tuple[str, str], int]

    def compare(self, expected: Expected) -> list[tuple[str, bool]]:
        """(what was expected, whether it happened), one line each."""
        lines = []
        for kind, scope in sorted(expected.incidents):
            lines.append(
                (f"incident {kind} for {scope}", (kind, scope) in self.incidents)
            )
            count = self.opened_alerts.get((kind, scope), 0)
            lines.append(
                (f"exactly one alert for its opening (sent {count})", count == 1)
            )
        for category, count in expected.work_items:
            have = self.work_items.get(category, 0)
            lines.append(
                (f"{count} {category} work item(s) (found {have})", have >= count)
            )
        for kind in sorted(expected.halts):
            lines.append((f"outbound halt {kind}", kind in self.halts))
        for code in sorted(expected.paused):
            lines.append((f"sending to {code} paused", code in self.paused))
        return lines


def rehearsal_outcome(ctx: Context) -> Outcome:
    """What happened since the rehearsal began."""
    incidents = {
        (i.kind, i.scope): i
        for i in Incident.objects.filter(opened_at__gte=ctx.started_at)
    }
    alerts = {
        key: incident.notifications.filter(event=NotificationEvent.OPENED).count()
        for key, incident in incidents.items()
    }
    work_items = Counter(
        WorkItem.objects.filter(document__in=[d.pk for d in ctx.documents]).values_list(
            "category", flat=True
        )
    )
    halts = set(
        OutboundHalt.objects.filter(opened_at__gte=ctx.started_at).values_list(
            "kind", flat=True
        )
    )
    paused = set(
        DestinationPause.objects.filter(opened_at__gte=ctx.started_at).values_list(
            "destination_ods_code", flat=True
        )
    )
    return Outcome(incidents, work_items, halts, paused, alerts)


def rehearsal_restore(scenario: Scenario, ctx: Context) -> list[str]:
    """Undo the failure: the simulator's practice accepts again, credentials and the
    route are back, halts and pauses the rehearsal caused are lifted, its incidents
    closed, and what waited in ready is sent."""
    done = []
    if scenario.restore_link is not None:
        scenario.restore_link(ctx)
        done.append("link to Connect restored")
    ctx.sim(
        "PUT",
        f"/_sim/organisations/{scenario.destination}",
        json={"endpoint_type": REHEARSAL_ENDPOINT_TYPE, "behaviour": "accept"},
    )
    done.append(f"{scenario.destination} accepts again at the simulator")
    for halt in OutboundHalt.objects.filter(
        opened_at__gte=ctx.started_at, closed_at__isnull=True
    ):
        outbound_halt_close(halt=halt, reason=f"Rehearsal {scenario.name} finished")
        done.append(f"halt {halt.kind} lifted")
    for pause in DestinationPause.objects.filter(
        opened_at__gte=ctx.started_at, lifted_at__isnull=True
    ):
        destination_pause_lift(
            pause=pause, reason=f"Rehearsal {scenario.name} finished", actor=None
        )
        done.append(f"pause of {pause.destination_ods_code} lifted")
    for incident in Incident.objects.filter(opened_at__gte=ctx.started_at).filter(
        Q(state=IncidentState.OPEN) | Q(state=IncidentState.ACKNOWLEDGED)
    ):
        incident_resolve(
            incident=incident, resolution=f"Rehearsal {scenario.name} finished"
        )
        done.append(f"incident {incident.kind} {incident.scope} resolved")
    sent = 0
    for document in Document.objects.filter(
        pk__in=[d.pk for d in ctx.documents], status="ready"
    ):
        document_send(document_id=document.pk)
        sent += 1
    if sent:
        done.append(f"{sent} waiting document(s) sent")
    return done


def rehearsal_run(
    name: str,
    *,
    organisation: SendingOrganisation,
    simulator_url: str,
    timeout: float = 60,
) -> tuple[bool, list[str]]:
    """One whole rehearsal; returns whether every expectation held, and a report."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise RehearsalRefused(
            f"No scenario {name!r}; choose one of {', '.join(SCENARIOS)}."
        )
    report = [f"Rehearsal {scenario.name}: {scenario.description}."]
    ctx = rehearsal_begin(
        scenario, organisation=organisation, simulator_url=simulator_url
    )
    try:
        rehearsal_submit(scenario, ctx)
        report.append(
            f"Submitted {len(ctx.documents)} document(s) to {scenario.destination}."
        )
        rehearsal_drive(scenario, ctx, timeout=timeout)
        operations_watch(now=timezone.now() + scenario.clock_ahead())
        outcome = rehearsal_outcome(ctx)
        lines = outcome.compare(scenario.expected(ctx))
        for text, ok in lines:
            report.append(f"  [{'ok' if ok else 'MISSING'}] {text}")
        states = Counter(
            Document.objects.filter(pk__in=[d.pk for d in ctx.documents]).values_list(
                "status", flat=True
            )
        )
        report.append(f"  documents now: {dict(states)}")
        report.append(f"  work items: {dict(outcome.work_items)}")
        report.append(
            "  incidents: "
            + (", ".join(f"{k} {s}" for k, s in sorted(outcome.incidents)) or "none")
        )
        passed = all(ok for _, ok in lines)
    finally:
        restored = rehearsal_restore(scenario, ctx)
    report.append("Restored: " + "; ".join(restored) + ".")
    report.append("PASSED" if passed else "FAILED")
    return passed, report
