"""One tracker node for the lease tests: the real tracker task (``transmissions.
tasks.track``) in a loop, as a worker on its own machine would run it, recording
in the shared database (table ``lease_test_runs``) when each run held the lease.

    python tests/nodes/tracker_node.py NAME RUN_SECONDS WAIT_SECONDS
"""

from __future__ import annotations

import os
import sys
import time

import django

django.setup()

from django.db import connection  # noqa: E402

from docflow import leases  # noqa: E402
from transmissions import tasks  # noqa: E402
from transmissions.pipeline.tracker import TRACKER_LEASE  # noqa: E402

NODE, RUN_SECONDS, WAIT_SECONDS = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])


def run_started(sender, name, token, **kwargs):
    if name == TRACKER_LEASE:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO lease_test_runs (node, pid, token, started)"
                " VALUES (%s, %s, %s, %s)",
                [NODE, os.getpid(), token, time.time()],
            )


def run_ended(sender, name, token, **kwargs):
    if name == TRACKER_LEASE:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE lease_test_runs SET ended = %s WHERE token = %s",
                [time.time(), token],
            )


leases.lease_taken.connect(run_started)
leases.lease_ending.connect(run_ended)
print(f"{NODE} ready", flush=True)
while True:
    tasks.track(seconds=RUN_SECONDS, wait=WAIT_SECONDS)
    time.sleep(0.3)  # the other node's standby gets its turn
