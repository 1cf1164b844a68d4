"""The cluster rehearsal: docflow as a trust runs it, on one machine.

Starts, all on loopback: nginx terminating TLS (the site ``deploy.nginx`` renders,
with a test certificate from ``deploy.tls``) in front of two web nodes (gunicorn),
two worker nodes (qcluster on the Redis broker), the Connect simulator and the
MLLP listener, on one PostgreSQL database and one Redis database of the
rehearsal's own. Each node is a process group of its own with
its own var directory; payload blobs live in PostgreSQL, so no node shares a disk
with another. Documents are driven through the API (via nginx, with an
Idempotency-Key, retried with the same key when a request fails in flight) and
through MLLP while one web node and one worker node are SIGKILLed; then the
outcome is checked and reported.

Run it with ``scripts/cluster-rehearsal`` (``--help`` for the options).

- ``setup``: the rehearsal's own database and Redis database, the nodes'
  environments, the data the run needs, the simulator's scenario.
- ``nodes``: the processes (one process group each), started, watched and killed.
- ``traffic``: the API clients (with retries) and the MLLP sender.
- ``outcome``: what the database, the simulator and the node logs say afterwards.
- ``report``: the figures and the acceptance checks, as a dictionary and as text.
- ``run``: the options and the order of events.
"""
