"""Acceptance 3 of issue 19: two tracker processes (real OS processes, the real
tracker task) on one database never run together, and when the holder is killed
with SIGKILL the other takes over within 30 s, with the production lease length
(DOCFLOW_LEASE_SECONDS, 15 s). SQLite and PostgreSQL alike."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.nodes.conftest import node_environment, wait_until
from transmissions.pipeline.tracker import TRACKER_LEASE

pytestmark = pytest.mark.integration

RUN_SECONDS = 6  # longer than a heartbeat (a third of the lease): runs renew
WAIT_SECONDS = 30
RUNS_TABLE = """CREATE TABLE lease_test_runs (
    node VARCHAR(20) NOT NULL, pid INTEGER NOT NULL, token VARCHAR(64) NOT NULL,
    started DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION NULL)"""


@pytest.fixture
def runs_table(shared_database):
    shared_database.rows(RUNS_TABLE)
    yield shared_database
    shared_database.rows("DROP TABLE lease_test_runs")


def runs(database) -> list[tuple]:
    return database.rows(
        "SELECT node, pid, token, started, ended FROM lease_test_runs ORDER BY started"
    )


def assert_never_together(recorded: list[tuple], *, killed_at: float) -> None:
    """Each run starts after the one before ended (a killed run ended when killed)."""
    for before, after in itertools.pairwise(recorded):
        ended = before[4] if before[4] is not None else killed_at
        assert after[3] >= ended, f"{after[0]} started while {before[0]} ran"


def test_two_tracker_processes_never_run_together_and_a_killed_holder_is_replaced(
    runs_table, start_node, tmp_path
):
    database = runs_table
    nodes = {
        name: start_node(
            name,
            [
                "tests/nodes/tracker_node.py",
                name,
                str(RUN_SECONDS),
                str(WAIT_SECONDS),
            ],
            node_environment(
                database, tmp_path / name, DOCFLOW_LEASE_POLL_SECONDS="0.2"
            ),
        )
        for name in ("node-a", "node-b")
    }
    live = list(nodes.values())

    # Both take turns, one at a time.
    wait_until(
        lambda: (
            {r[0] for r in runs(database) if r[4] is not None} == {"node-a", "node-b"}
        ),
        timeout=45,
        what="a finished run on each node",
        nodes=live,
    )

    # Kill the holder early in a run (it certainly holds the lease then).
    def fresh_run():
        recorded = runs(database)
        last = recorded[-1] if recorded else None
        if last and last[4] is None and time.time() - last[3] < 1.5:
            return last
        return None

    holder_name, holder_pid, _, _, _ = wait_until(
        fresh_run, timeout=30, what="a run just started", nodes=live, every=0.05
    )
    [expires_at] = database.rows(
        "SELECT expires_at FROM docflow_lease WHERE name = %s", [TRACKER_LEASE]
    )[0]
    holder = nodes[holder_name]
    assert holder.process.pid == holder_pid
    holder.kill()
    killed_at = time.time()
    survivor_name = next(name for name in nodes if name != holder_name)

    def taken_over():
        return [r for r in runs(database) if r[0] == survivor_name and r[3] > killed_at]

    [takeover, *_] = wait_until(
        taken_over,
        timeout=40,
        what="the survivor taking the lease",
        nodes=[nodes[survivor_name]],
    )
    handover = takeover[3] - killed_at
    print(f"handover after SIGKILL: {handover:.1f} s")
    assert handover < 30
    # Not before the dead holder's lease ran out (the lease, not luck, kept them
    # apart); SQLite returns the expiry as text, PostgreSQL as a datetime.
    if isinstance(expires_at, str):
        from django.utils.dateparse import parse_datetime

        expires_at = parse_datetime(expires_at)
    assert takeover[3] >= expires_at.timestamp() - 0.5
    assert_never_together(runs(database), killed_at=killed_at)
