"""Failing background tasks: django-q Failure rows written by django-q's own
``save_task`` (as its monitor writes them, timeouts worded by its own
TimeoutHandler) raise one incident per task function, join it, and resolve it."""

from __future__ import annotations

import json
import traceback
from datetime import timedelta

import pytest
import time_machine
from django_q.brokers import get_broker
from django_q.exceptions import TimeoutException
from django_q.humanhash import uuid
from django_q.models import Failure, Task
from django_q.monitor import save_task
from django_q.timeout import TimeoutHandler

from operations.models import Incident, IncidentKind, IncidentState, Snapshot
from operations.services.task_failures import task_failures_prune, task_failures_watch
from tests.operations.conftest import T0

pytestmark = pytest.mark.django_db

PREPARE = "transmissions.tasks.prepare_document"
SEND = "transmissions.tasks.send_document"


def failure_saved(func: str, *, at, timed_out: bool = False, args=(4242,)) -> str:
    """One failed task saved by django-q's monitor code, ``at`` when it stopped; a
    timeout carries the text django-q's worker records for one."""
    name, task_id = uuid()
    try:
        if timed_out:
            TimeoutHandler(120).raise_timeout_exception(None, None)
        raise ValueError("the task went wrong")
    except (Exception, TimeoutException) as exc:
        result = f"{exc} : {traceback.format_exc()}"  # as django_q.worker words it
    task = {
        "id": task_id,
        "name": name,
        "func": func,
        "args": args,
        "kwargs": {},
        "started": at - timedelta(seconds=120 if timed_out else 1),
        "stopped": at,
        "result": result,
        "success": False,
        "ack_failure": True,
        "cached": False,
        # The monitor's own connection handling is left out: the test's
        # transaction is the connection it would close.
        "sync": True,
    }
    save_task(task, get_broker())
    return task_id


def watch_at(moment):
    with time_machine.travel(moment, tick=False):
        return task_failures_watch()


def unresolved() -> list[Incident]:
    return list(
        Incident.objects.filter(kind=IncidentKind.TASK_FAILURES).exclude(
            state=IncidentState.RESOLVED
        )
    )


def test_failure_rows_are_the_ones_django_q_saves_for_a_timeout():
    task_id = failure_saved(PREPARE, at=T0, timed_out=True)

    failure = Failure.objects.get()
    assert failure.id == task_id and failure.func == PREPARE
    assert failure.success is False and failure.stopped == T0
    assert failure.result.startswith(
        "Task exceeded maximum timeout value (120 seconds) : Traceback"
    )


def test_one_timeout_raises_one_incident_naming_function_counts_times_and_ids():
    task_id = failure_saved(PREPARE, at=T0, timed_out=True)

    raised = watch_at(T0 + timedelta(seconds=30))

    assert [item.func for item in raised] == [PREPARE]
    (incident,) = unresolved()
    assert incident.scope == f"task:{PREPARE}"
    assert incident.severity == "major"
    assert incident.summary == (
        f"Task {PREPARE} timed out 1 time(s) in the last 900 s (1 failure(s) in all)"
    )
    assert incident.details == {
        "function": PREPARE,
        "failures": 1,
        "timeouts": 1,
        "window_seconds": 900,
        "threshold": 3,
        "first_failed_at": T0.isoformat(),
        "last_failed_at": T0.isoformat(),
        "task_ids": [task_id],
        "timed_out_task_ids": [task_id],
    }
    assert incident.notifications.count() == 1


def test_an_incident_never_carries_task_arguments_or_results():
    failure_saved(PREPARE, at=T0, timed_out=True, args=(987654,))

    watch_at(T0 + timedelta(seconds=30))

    (incident,) = unresolved()
    text = json.dumps(incident.details) + incident.summary
    assert "987654" not in text
    assert "Traceback" not in text and "exceeded" not in text


def test_failures_below_the_threshold_raise_nothing_and_reaching_it_one_incident(
    settings,
):
    settings.DOCFLOW_OPS_TASK_FAILURE_THRESHOLD = 3
    first = failure_saved(SEND, at=T0)
    failure_saved(SEND, at=T0 + timedelta(seconds=10))

    assert watch_at(T0 + timedelta(seconds=20)) == []
    assert unresolved() == []

    last = failure_saved(SEND, at=T0 + timedelta(seconds=30))
    watch_at(T0 + timedelta(seconds=40))

    (incident,) = unresolved()
    assert incident.summary == f"Task {SEND} failed 3 time(s) in the last 900 s"
    assert incident.details["failures"] == 3
    assert incident.details["timeouts"] == 0
    assert incident.details["first_failed_at"] == T0.isoformat()
    assert (
        incident.details["last_failed_at"] == (T0 + timedelta(seconds=30)).isoformat()
    )
    assert incident.details["task_ids"][0] == last
    assert incident.details["task_ids"][-1] == first


def test_failures_outside_the_window_are_not_counted(settings):
    settings.DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS = 600
    failure_saved(SEND, at=T0)
    failure_saved(SEND, at=T0 + timedelta(seconds=10))
    failure_saved(SEND, at=T0 + timedelta(seconds=620))

    watch_at(T0 + timedelta(seconds=630))

    assert unresolved() == []


def test_a_function_that_keeps_failing_joins_its_incident_with_new_counts():
    failure_saved(PREPARE, at=T0, timed_out=True)
    watch_at(T0 + timedelta(seconds=60))
    failure_saved(PREPARE, at=T0 + timedelta(seconds=150), timed_out=True)
    failure_saved(PREPARE, at=T0 + timedelta(seconds=160))

    watch_at(T0 + timedelta(seconds=180))

    (incident,) = unresolved()
    assert incident.occurrences == 2
    assert incident.details["failures"] == 3
    assert incident.details["timeouts"] == 2
    assert incident.notifications.count() == 1


def test_other_functions_get_incidents_of_their_own():
    failure_saved(PREPARE, at=T0, timed_out=True)
    failure_saved(SEND, at=T0, timed_out=True)

    watch_at(T0 + timedelta(seconds=30))

    assert sorted(i.scope for i in unresolved()) == [f"task:{PREPARE}", f"task:{SEND}"]


def test_the_incident_resolves_only_once_the_window_is_quiet(settings):
    settings.DOCFLOW_OPS_TASK_FAILURE_WINDOW_SECONDS = 600
    failure_saved(PREPARE, at=T0, timed_out=True)
    watch_at(T0 + timedelta(seconds=30))
    # One more (ordinary) failure: under the threshold, but the window is not quiet.
    failure_saved(PREPARE, at=T0 + timedelta(seconds=300))

    watch_at(T0 + timedelta(seconds=700))
    (incident,) = unresolved()
    assert incident.details["timeouts"] == 1  # not re-raised: the same details

    watch_at(T0 + timedelta(seconds=901))
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolution == "No failure of this task in the window any more."


def test_a_timeout_seen_by_an_earlier_look_is_kept_not_read_again():
    task_id = failure_saved(PREPARE, at=T0, timed_out=True)
    watch_at(T0 + timedelta(seconds=30))
    kept = Snapshot.objects.get(key="task_failures").data
    assert kept["cursor"] == T0.isoformat()
    assert kept["timeouts"] == {PREPARE: {task_id: T0.isoformat()}}

    # Long after the cursor's overlap, but inside the window: still one timeout.
    watch_at(T0 + timedelta(seconds=600))

    (incident,) = unresolved()
    assert incident.details["timeouts"] == 1
    assert incident.details["timed_out_task_ids"] == [task_id]


def test_a_timeout_its_monitor_saved_late_is_found_by_the_next_look():
    failure_saved(SEND, at=T0 + timedelta(seconds=55))
    watch_at(T0 + timedelta(seconds=60))
    assert unresolved() == []

    # Stopped before the cursor, saved after the look that moved it.
    late = failure_saved(PREPARE, at=T0 + timedelta(seconds=40), timed_out=True)
    watch_at(T0 + timedelta(seconds=120))

    (incident,) = unresolved()
    assert incident.details["timed_out_task_ids"] == [late]


def test_the_minute_watch_looks_at_failing_tasks(practices):
    from operations import tasks

    failure_saved(PREPARE, at=T0, timed_out=True)

    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        report = tasks.watch()

    assert " failing_tasks=1 " in report
    assert [i.scope for i in unresolved()] == [f"task:{PREPARE}"]


def test_failed_task_rows_past_their_keeping_period_are_pruned(practices, settings):
    settings.DOCFLOW_OPS_TASK_FAILURE_KEEP_DAYS = 30
    old = failure_saved(PREPARE, at=T0 - timedelta(days=31))
    kept = failure_saved(PREPARE, at=T0 - timedelta(days=29))
    success = Task.objects.create(
        id="ok-task",
        name="ok",
        func=PREPARE,
        started=T0 - timedelta(days=40),
        stopped=T0 - timedelta(days=40),
        success=True,
    )

    with time_machine.travel(T0, tick=False):
        pruned = task_failures_prune(batch=1)

    assert pruned == 1
    assert set(Failure.objects.values_list("id", flat=True)) == {kept}
    assert not Failure.objects.filter(id=old).exists()
    assert Task.objects.filter(id=success.id).exists()  # successes are not its job


def test_the_failure_watch_reads_through_its_partial_index():
    from django.db import connection

    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "django_q_task")
    assert "docflow_task_failure_stopped" in indexes
    assert indexes["docflow_task_failure_stopped"]["columns"] == ["stopped"]
