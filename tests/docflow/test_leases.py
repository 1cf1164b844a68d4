"""Leases on singleton jobs (``docflow.leases``): one holder at a time, renewed by
the holder's heartbeat while the job runs, lost when another run took it over, and
the singletons that run under one skip quietly while it is held."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import CommandError, call_command

from docflow import leases
from docflow.models import Lease
from governance import tasks as governance_tasks
from intake.file_drop import FILE_DROP_LEASE, drop_folders_scan
from operations import tasks as operations_tasks
from transmissions import tasks

SHORT = 0.6  # seconds: a heartbeat every 0.2 s


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_lease_held_longer_than_its_length():
    with leases.lease_held(name="job", seconds=SHORT) as lease:
        assert lease
        deadline = time.monotonic() + 4 * SHORT
        while time.monotonic() < deadline:
            # Live and renewed: nobody else can take it.
            assert leases.lease_take(name="job", seconds=SHORT) is None
            time.sleep(0.1)
        assert lease
    # Given back after the block: free at once.
    assert not leases.lease_is_held(name="job")
    assert leases.lease_take(name="job", seconds=SHORT) is not None


@pytest.mark.django_db(transaction=True)
def test_a_holder_whose_lease_was_taken_over_sees_it_lost_and_leaves_it_alone():
    lost = []
    receiver = lambda sender, name, **kw: lost.append(name)  # noqa: E731
    leases.lease_lost.connect(receiver, weak=False)
    with leases.lease_held(name="job", seconds=SHORT) as lease:
        # It stalled past its lease, say, and another run took the row.
        Lease.objects.filter(name="job").update(holder="another-run")
        deadline = time.monotonic() + 5 * SHORT
        while lease and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not lease
        assert lease.lost.is_set()
    leases.lease_lost.disconnect(receiver)
    assert lost == ["job"]
    # Not given back on the way out: it is the other run's.
    assert Lease.objects.get(name="job").holder == "another-run"


@pytest.mark.django_db(transaction=True)
def test_a_run_waiting_for_a_lease_takes_it_once_a_dead_holder_s_runs_out():
    # A holder that died: taken, never renewed, never given back.
    assert leases.lease_take(name="job", seconds=SHORT) is not None
    started = time.monotonic()
    with leases.lease_held(name="job", seconds=SHORT, wait=5) as lease:
        waited = time.monotonic() - started
        assert lease
    assert SHORT * 0.5 <= waited < SHORT + 1.5


@pytest.mark.django_db
def test_a_run_that_finds_the_lease_held_does_not_wait_unless_asked():
    assert leases.lease_take(name="job", seconds=60) is not None
    skipped = []
    receiver = lambda sender, name, **kw: skipped.append(name)  # noqa: E731
    leases.lease_skipped.connect(receiver, weak=False)
    try:
        with leases.lease_held(name="job") as lease:
            assert not lease
    finally:
        leases.lease_skipped.disconnect(receiver)
    assert skipped == ["job"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "lease"),
    [
        (tasks.mesh_poll_inboxes, "transmissions.mesh_poll_inboxes"),
        (tasks.mesh_handshake, "transmissions.mesh_handshake"),
        (tasks.mesh_settle_unanswered, "transmissions.mesh_settle_unanswered"),
        (tasks.reconcile_organisations, "transmissions.reconcile_organisations"),
        (operations_tasks.roll_up_hourly_counts, "operations.roll_up_hourly_counts"),
        (governance_tasks.purge_payloads, "governance.purge_payloads"),
    ],
)
def test_a_singleton_task_skips_while_another_run_holds_its_lease(task, lease):
    token = leases.lease_take(name=lease, seconds=60)
    assert task() is None
    assert leases.lease_release(name=lease, token=token)
    assert task() is not None
    assert not leases.lease_is_held(name=lease)


@pytest.mark.django_db
def test_the_tracker_does_not_run_while_another_tracker_holds_its_lease():
    from transmissions.pipeline.tracker import TRACKER_LEASE

    assert leases.lease_take(name=TRACKER_LEASE, seconds=60) is not None
    started = time.monotonic()
    assert tasks.track(seconds=5, wait=0.3) == 0
    assert time.monotonic() - started < 3


@pytest.mark.django_db
def test_the_file_drop_scanner_skips_a_pass_while_another_node_s_pass_runs():
    token = leases.lease_take(name=FILE_DROP_LEASE, seconds=60)
    assert drop_folders_scan() is None
    leases.lease_release(name=FILE_DROP_LEASE, token=token)
    assert drop_folders_scan() == {"processed": 0, "rejected": 0}


@pytest.mark.django_db(transaction=True)
def test_watch_folders_once_waits_for_a_dead_scanner_s_lease_to_run_out(settings):
    settings.DOCFLOW_LEASE_SECONDS = 1.0
    settings.DOCFLOW_LEASE_POLL_SECONDS = 0.1
    assert leases.lease_take(name=FILE_DROP_LEASE, seconds=1.0) is not None
    out = io.StringIO()
    started = time.monotonic()
    call_command("watch_folders", "--once", stdout=out)
    assert time.monotonic() - started >= 0.8
    assert out.getvalue().strip() == "processed 0, rejected 0"


@pytest.mark.django_db(transaction=True)
def test_watch_folders_once_fails_when_a_live_scanner_keeps_the_lease(settings):
    settings.DOCFLOW_LEASE_SECONDS = 0.5
    settings.DOCFLOW_LEASE_POLL_SECONDS = 0.1
    assert leases.lease_take(name=FILE_DROP_LEASE, seconds=60) is not None
    with pytest.raises(CommandError, match="nothing was read"):
        call_command("watch_folders", "--once", stdout=io.StringIO())
