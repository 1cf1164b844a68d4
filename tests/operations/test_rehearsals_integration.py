"""Each rehearsal end to end (PostgreSQL only): a Connect simulator process over
HTTP, a real django-q2 cluster preparing, sending, tracking and running the
operations watch, alerts posted to a real webhook; exactly one alert per incident
opening, however many times the watch runs."""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest
from django_q.models import OrmQ

from docflow.models import DestinationProfile, Document
from operations.models import Incident, IncidentNotification, NotificationStatus
from operations.rehearsals.checks import rehearsal_outcome
from operations.rehearsals.runner import (
    rehearsal_begin,
    rehearsal_restore,
    rehearsal_submit,
)
from operations.rehearsals.scenarios import SCENARIOS
from tests.integration.conftest import (  # noqa: F401 - fixtures
    PERIODIC_TASKS,
    Process,
    connect_simulator,
    engine,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

WATCH = "operations.tasks.watch"
TASKS = (*PERIODIC_TASKS, WATCH)
# The watch keeps running after the incidents opened: more runs must not re-alert.
EXTRA_WATCH_RUNS = 3


def restart(simulator) -> None:
    """Start the simulator again on its port, with its scenario and state."""
    old = simulator.process
    simulator.process = Process(
        "simulator",
        list(old.popen.args[1:]),
        env={**os.environ, "DJANGO_DEBUG": "1"},
        log_path=old.log_path,
    )
    wait_for(lambda: _healthy(simulator.url), timeout=60, message="the simulator again")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sim/health", timeout=1).is_success
    except httpx.HTTPError:
        return False


def run_watch_more(running, times: int) -> None:
    """Let the cluster run the watch ``times`` more times."""
    for _ in range(times):
        running.tick((WATCH,))
        wait_for(lambda: not _queued(WATCH), timeout=60, message="the operations watch")


def _queued(func: str) -> bool:
    return any(row.func() == func for row in OrmQ.objects.all())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_rehearsal_with_a_real_cluster_raises_what_it_should_and_alerts_once(
    engine,  # noqa: F811 - fixture
    webhook,
    name,
    monkeypatch,
    settings,
    request,
):
    # This process restores what the rehearsal broke, as the command would.
    settings.DOCFLOW_CONNECT_BASE_URL = engine.simulator.url
    monkeypatch.setenv("CONNECT_SECRET_RX1", "demo-secret-RX1")
    scenario = SCENARIOS[name]
    if name == "delayed-acknowledgements":
        # The practice's acknowledgements are late after a second, not three days.
        DestinationProfile.objects.filter(endpoint_type="docman10").update(
            expected_seconds_in_state={"sending": 300, "received": 1, "delivered": 1}
        )
    outage = name == "connect-outage"
    ctx = rehearsal_begin(
        scenario,
        organisation=engine.organisation,
        simulator_url=engine.simulator.url,
        break_link=not outage,
    )
    if outage:
        # A real outage: the simulator process is gone.
        engine.simulator.process.kill()
    engine.start_cluster(
        workers=3,
        DOCFLOW_OPS_WEBHOOK_URL=webhook.url,
        DOCFLOW_OPS_REJECTION_SURGE_MIN="5",
        DOCFLOW_OPS_UNACKNOWLEDGED_PAUSE_THRESHOLD="3",
    )
    rehearsal_submit(scenario, ctx)
    expected = scenario.expected(ctx)

    def happened():
        outcome = rehearsal_outcome(ctx)
        return all(ok for _, ok in outcome.compare(expected)) and outcome

    outcome = engine.wait_for(
        happened, timeout=120, message=f"the {name} rehearsal", tasks=TASKS
    )
    run_watch_more(engine, EXTRA_WATCH_RUNS)

    wait_for(
        lambda: (
            not IncidentNotification.objects.filter(
                webhook_status=NotificationStatus.PENDING
            ).exists()
        ),
        timeout=60,
        message="alerts delivered",
    )
    opened = Counter(
        (body["kind"], body["scope"])
        for body in webhook.bodies
        if body["event"] == "opened"
    )
    incidents = list(Incident.objects.all())
    assert {(i.kind, i.scope) for i in incidents} >= set(expected.incidents)
    assert opened == Counter({(i.kind, i.scope): 1 for i in incidents}), opened
    assert not [b for b in webhook.bodies if b["event"] == "reminder"]
    assert all(outcome.opened_alerts[key] == 1 for key in expected.incidents)

    if outage:
        restart(engine.simulator)
        # The fixture stops the simulator it started; this one is the test's own.
        request.addfinalizer(engine.simulator.process.kill)
    rehearsal_restore(scenario, ctx)
    assert not Incident.objects.exclude(state="resolved").exists()
    if not scenario.settle:
        # What waited behind the halt goes once the link is back.
        documents = Document.objects.filter(pk__in=[d.pk for d in ctx.documents])
        engine.wait_for(
            lambda: not documents.filter(status__in=["ready", "sending"]).exists(),
            timeout=120,
            message="the waiting documents sent",
        )
