"""Chaos: a flaky practice, SIGKILLs of the cluster, and the guarantees that must
hold through them (real simulator over HTTP, real qcluster processes, PostgreSQL).

Three phases, 340 documents in all:

1. baseline: 60 documents to a healthy practice alone, no fault: how long each
   takes from submission to ``received``;
2. the flaky practice (``flaky:0.5``: a sixth of its POSTs answered 503, a sixth
   429 with Retry-After, a sixth stored and answered too late) gets as many
   documents as the healthy one, interleaved: no healthy document may take more
   than 10 s longer than the slowest of the baseline;
3. 100 healthy and 60 flaky documents while the cluster is SIGKILLed three times
   (a new one started each time): every claim left by a dead worker is released
   within 30 s of its death, everything is settled within 120 s of the last kill,
   nothing is lost and nothing duplicated, counted at the simulator per
   idempotency key, and every document ends final or in an attention state with
   exactly one open work item.

The test process plays the minute schedule sped up: it queues the tracker's loop
(which keeps the clock) whenever no live tracker holds its lock, as the schedule
does after a kill, and the sweep for work whose queueing was lost. Backoffs are a
second or two, the lease 6 s; the sending timeout is left at 300 s, so nothing here
is rescued by it.
"""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditEvent
from casework.models import WorkItem, WorkItemStatus
from docflow.leases import lease_is_held
from docflow.models import Document, DocumentStatus
from tests.factories import submit_document
from tests.integration.conftest import wait_for
from transmissions.models import Transmission
from transmissions.pipeline.tracker import TRACKER_LEASE
from transmissions.queue import TRACK

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

S = DocumentStatus
HEALTHY = "A81001"
FLAKY = "A81010"  # flaky:0.5 in the integration scenario
ON_ITS_WAY = {S.SUBMITTED, S.READY, S.SENDING, S.OUTCOME_UNKNOWN}
ATTENTION = {S.HELD, S.OUTCOME_UNKNOWN, S.REJECTED, S.SYSTEM_ERROR, S.UNDELIVERED}
CHAOS_ENV = {
    "DOCFLOW_SEND_RETRY_BASE_SECONDS": "1",
    "DOCFLOW_SEND_RETRY_MAX_SECONDS": "2",
    "DOCFLOW_SEND_LEASE_SECONDS": "6",
    "DOCFLOW_CLOCK_ROUND_SECONDS": "0.5",
    "DOCFLOW_CLOCK_REQUEUE_SECONDS": "5",
    "DOCFLOW_SENDING_TIMEOUT_SECONDS": "300",
    "DOCFLOW_DISPATCH_GRACE_SECONDS": "15",
    "DOCFLOW_CIRCUIT_COOLDOWN_SECONDS": "2",
}
LOOP_SECONDS = 4


class Schedule:
    """The minute schedules, sped up: the tracker's loop whenever no live tracker
    holds its lease (a killed one's runs out within the clusters' short lease),
    and the sweep every few seconds (queued whatever the queue holds, as the
    scheduler does: a killed cluster's tasks stay in the queue until the broker
    retries them)."""

    def __init__(self, engine):
        self.engine = engine
        self.loop_queued_at = 0.0
        self.sweep_queued_at = 0.0

    def __call__(self) -> None:
        self.engine.tick(())  # fails the test if a cluster died by itself
        now = time.monotonic()
        if now - self.sweep_queued_at >= 5:
            async_task("transmissions.tasks.dispatch_due")
            self.sweep_queued_at = now
        if now - self.loop_queued_at < 2 or not tracker_free():
            return
        async_task(TRACK, LOOP_SECONDS)
        self.loop_queued_at = now


def tracker_free() -> bool:
    return not lease_is_held(name=TRACKER_LEASE)


def submit(engine, destinations: list[str]) -> list[Document]:
    return [
        submit_document(
            sending_organisation=engine.organisation, destination_ods_code=code
        )
        for code in destinations
    ]


def statuses(documents) -> dict[int, str]:
    return dict(
        Document.objects.filter(pk__in=[d.pk for d in documents]).values_list(
            "pk", "status"
        )
    )


def settled(documents) -> bool:
    return not set(statuses(documents).values()) & ON_ITS_WAY


def received_after(documents) -> dict[int, float]:
    """Seconds from each document's submission to Connect's 4002 (received)."""
    by_public_id = {str(d.public_id): d for d in documents}
    first: dict[str, dt.datetime] = {}
    for target, at in (
        AuditEvent.objects.filter(
            action="document.mark_received", target_id__in=list(by_public_id)
        )
        .order_by("occurred_at")
        .values_list("target_id", "occurred_at")
    ):
        first.setdefault(target, at)
    return {
        by_public_id[target].pk: (at - by_public_id[target].created_at).total_seconds()
        for target, at in first.items()
    }


def wait_settled(engine, schedule, documents, *, timeout: float, message: str):
    wait_for(
        lambda: settled(documents),
        timeout=timeout,
        every=0.3,
        between=schedule,
        message=message,
        details=lambda: f"{_counts(documents)}\n{engine.logs()}",
    )


def _counts(documents) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses(documents).values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def copies_at_connect(simulator_url: str, keys: list[str]) -> dict[str, int]:
    """How many documents the simulator holds under each idempotency key."""
    token = httpx.post(
        f"{simulator_url}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "client-RX1",
            "client_secret": "demo-secret-RX1",
        },
        timeout=10,
    ).json()["access_token"]
    with httpx.Client(
        base_url=simulator_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        return {
            key: len(
                client.get("/api/documents", params={"idempotencyKey": key}).json()[
                    "Documents"
                ]
            )
            for key in keys
        }


def kill_mid_run(engine, cluster, documents, figures) -> tuple[dt.datetime, object]:
    """SIGKILL ``cluster`` once POSTs are in flight (or soon anyway), start a new
    one at once, and check every claim the dead workers held is released within
    30 s of their death."""
    schedule = Schedule(engine)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if S.SENDING in statuses(documents).values():
            break
        schedule()
        time.sleep(0.05)
    cluster.kill()
    killed_at = timezone.now()
    stranded = [pk for pk, status in statuses(documents).items() if status == S.SENDING]
    replacement = engine.start_cluster(workers=4, **CHAOS_ENV)

    def released() -> bool:
        return not Document.objects.filter(
            pk__in=stranded, status=S.SENDING, status_changed_at__lte=killed_at
        ).exists()

    wait_for(
        released,
        timeout=30,
        every=0.3,
        between=schedule,
        message=f"the {len(stranded)} claims of the killed cluster to be released",
        details=lambda: (
            f"still in sending: {still_sending(stranded, killed_at)}\n"
            f"{replacement.log_tail()}"
        ),
    )
    figures.append(
        f"kill: {len(stranded)} claims released in "
        f"{(timezone.now() - killed_at).total_seconds():.1f} s"
    )
    return killed_at, replacement


def still_sending(document_ids, since) -> list:
    return list(
        Transmission.objects.filter(
            document_id__in=document_ids,
            document__status=S.SENDING,
            document__status_changed_at__lte=since,
        ).values_list("document_id", "lease_expires_at", "send_queued_at", "channel")
    )


def test_a_flaky_practice_and_three_kills_lose_duplicate_and_delay_nothing(engine):
    schedule = Schedule(engine)
    cluster = engine.start_cluster(workers=4, **CHAOS_ENV)

    # 1. Baseline: the healthy practice alone.
    baseline = submit(engine, [HEALTHY] * 60)
    wait_settled(engine, schedule, baseline, timeout=180, message="the baseline")
    slowest_alone = max(received_after(baseline).values())
    figures = [f"baseline: slowest received after {slowest_alone:.1f} s"]

    # 2. The flaky practice alongside.
    mixed = submit(engine, [HEALTHY, FLAKY] * 60)
    wait_settled(engine, schedule, mixed, timeout=180, message="the flaky phase")
    healthy_mixed = [d for d in mixed if d.destination_ods_code == HEALTHY]
    latencies = received_after(healthy_mixed)
    assert len(latencies) == len(healthy_mixed)
    figures.append(
        f"with the flaky practice: slowest healthy {max(latencies.values()):.1f} s"
    )
    assert max(latencies.values()) <= slowest_alone + 10, (
        f"healthy documents took up to {max(latencies.values()):.1f} s with the "
        f"flaky practice, {slowest_alone:.1f} s without"
    )

    # 3. Chaos: three kills while documents are on their way.
    chaos: list[Document] = []
    kills = []
    for share in (7, 7, 6):  # each kill with its own documents on their way
        chaos += submit(engine, ([HEALTHY] * 5 + [FLAKY] * 3) * share)
        killed_at, cluster = kill_mid_run(engine, cluster, chaos, figures)
        kills.append(killed_at)
    wait_settled(
        engine,
        schedule,
        chaos,
        timeout=120 - (timezone.now() - kills[-1]).total_seconds(),
        message="everything settled within 120 s of the last kill",
    )
    after_last_kill = (timezone.now() - kills[-1]).total_seconds()
    assert after_last_kill <= 120
    figures.append(f"all settled {after_last_kill:.1f} s after the last kill")

    everything = baseline + mixed + chaos
    assert len(everything) == 340
    # Final (accepted), or waiting for a person with exactly one open work item.
    wait_for(
        lambda: set(statuses(everything).values()) <= {S.ACCEPTED} | ATTENTION,
        timeout=120,
        between=schedule,
        message="every document final or in an attention state",
        details=lambda: str(_counts(everything)),
    )
    open_items = {
        pk: WorkItem.objects.filter(document_id=pk, status=WorkItemStatus.OPEN).count()
        for pk in statuses(everything)
    }
    for pk, status in statuses(everything).items():
        assert open_items[pk] == (1 if status in ATTENTION else 0), (pk, status)

    # Nothing lost, nothing duplicated: one transmission (one key) per document,
    # and at Connect exactly one copy under each key of a document that got there.
    transmissions = list(
        Transmission.objects.filter(document__in=everything).values_list(
            "document_id", "idempotency_key"
        )
    )
    assert sorted(pk for pk, _ in transmissions) == sorted(d.pk for d in everything)
    final = statuses(everything)
    copies = copies_at_connect(engine.simulator.url, [key for _, key in transmissions])
    for document_id, key in transmissions:
        expected = 0 if final[document_id] == S.HELD else 1
        assert copies[key] == expected, (document_id, final[document_id])
    stats = engine.simulator.stats()
    reached = sum(1 for status in final.values() if status != S.HELD)
    assert (stats["documents"], stats["distinct_keys"]) == (reached, reached)
    assert reached >= 300
    figures.append(
        f"{reached} documents at Connect, once each; final: {_counts(everything)}"
    )
    print("\n".join(["", "chaos figures:", *figures]))  # shown with pytest -s
