"""One rehearsal from start to finish: make the destination known to both sides
and break it, submit documents through intake, drive the pipeline in this process,
run the operations watch, compare, restore, report."""

from __future__ import annotations

import datetime
import time
import uuid
from collections import Counter

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from docflow.models import (
    Document,
    Organisation,
    OrganisationStatus,
    SendingOrganisation,
)
from docflow.sample_pdf import text_pdf
from docflow.services import DocumentSubmission, document_submit
from operations.models import Incident, IncidentState
from operations.rehearsals.checks import rehearsal_outcome
from operations.rehearsals.scenarios import (
    REHEARSAL_ENDPOINT_TYPE,
    REHEARSAL_NHS_NUMBER,
    SCENARIOS,
    SOURCE_SYSTEM,
    Context,
    Scenario,
)
from operations.rehearsals.simulator import RehearsalRefused, SimulatorControl
from operations.services.incidents import incident_resolve
from operations.services.watch import operations_watch_run
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.engine.controls import (
    destination_pause_close,
    destination_pauses_open,
    outbound_halt_close,
)
from transmissions.models import HaltKind, OutboundHalt
from transmissions.pipeline.sending import document_send
from transmissions.pipeline.sweep import document_prepare_for_sending


def rehearsal_begin(
    scenario: Scenario,
    *,
    organisation: SendingOrganisation,
    simulator_url: str,
    break_link: bool = True,
) -> Context:
    """Make the rehearsal destination known to both sides, then break it (the link
    too, unless the caller breaks it another way)."""
    simulator = SimulatorControl(simulator_url)
    simulator.check()
    ctx = Context(
        organisation=organisation, simulator=simulator, started_at=timezone.now()
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
    simulator.organisation_set(
        ods_code=scenario.destination,
        name=f"Rehearsal practice {scenario.destination}",
        endpoint_type=REHEARSAL_ENDPOINT_TYPE,
        behaviour=scenario.behaviour,
    )
    if break_link and scenario.break_link is not None:
        scenario.break_link(ctx)
    return ctx


def rehearsal_documents_count(scenario: Scenario) -> int:
    return scenario.documents or settings.DOCFLOW_CIRCUIT_FAILURE_THRESHOLD


def rehearsal_submit(scenario: Scenario, ctx: Context) -> list[Document]:
    """Submit the rehearsal's documents through intake (metadata of a test patient)."""
    content = text_pdf(["Rehearsal"], pad_to=scenario.document_size)
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


def rehearsal_restore(scenario: Scenario, ctx: Context) -> list[str]:
    """Undo the failure: the simulator's practice accepts again, credentials and the
    route are back, halts and pauses the rehearsal caused are lifted, its incidents
    closed, and what waited in ready is sent."""
    done = []
    if scenario.restore_link is not None:
        scenario.restore_link(ctx)
        done.append("link to Connect restored")
    ctx.simulator.organisation_set(
        ods_code=scenario.destination,
        endpoint_type=REHEARSAL_ENDPOINT_TYPE,
        behaviour="accept",
    )
    done.append(f"{scenario.destination} accepts again at the simulator")
    for halt in OutboundHalt.objects.filter(
        opened_at__gte=ctx.started_at, closed_at__isnull=True
    ).exclude(kind=HaltKind.DESTINATION_PAUSE):
        outbound_halt_close(halt=halt, reason=f"Rehearsal {scenario.name} finished")
        done.append(f"halt {halt.kind} lifted")
    for pause in destination_pauses_open().filter(opened_at__gte=ctx.started_at):
        destination_pause_close(
            halt=pause, reason=f"Rehearsal {scenario.name} finished", actor=None
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
        operations_watch_run(now=timezone.now() + scenario.clock_ahead())
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
