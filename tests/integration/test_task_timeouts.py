"""A task that really times out in a real django-q2 cluster (a one-second
``Q_TIMEOUT``) raises the task-failure incident through the minute watch, which the
same cluster runs."""

from __future__ import annotations

import pytest
from django_q.models import Failure
from django_q.tasks import async_task

from operations.models import Incident, IncidentKind, IncidentState

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

SLEEPER = "tests.integration.slow_tasks.sleep_past_timeout"
WATCH = "operations.tasks.watch"


def test_a_task_that_times_out_in_the_cluster_raises_one_incident(engine):
    # The watch itself runs under the same timeout: well inside it on this database.
    engine.start_cluster(workers=2, Q_TIMEOUT="2")
    task_id = async_task(SLEEPER, 30)

    failure = engine.wait_for(
        lambda: Failure.objects.filter(id=task_id).first(),
        timeout=60,
        message="the sleeping task to be recorded as failed",
        tasks=(),
    )
    assert failure.func == SLEEPER
    assert failure.result.startswith("Task exceeded maximum timeout value (2 seconds)")

    incident = engine.wait_for(
        lambda: Incident.objects.filter(
            kind=IncidentKind.TASK_FAILURES, scope=f"task:{SLEEPER}"
        ).first(),
        timeout=60,
        message="the watch to raise the task-failure incident",
        tasks=(WATCH,),
    )
    assert incident.state == IncidentState.OPEN
    assert incident.details["function"] == SLEEPER
    assert incident.details["timeouts"] == 1
    assert incident.details["failures"] == 1
    assert incident.details["timed_out_task_ids"] == [task_id]
    assert incident.details["task_ids"] == [task_id]
    # The watch itself ran inside the timeout: no incident of its own.
    assert not Incident.objects.filter(scope=f"task:{WATCH}").exists()
