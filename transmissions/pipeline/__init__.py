"""Every write of the transmissions app, one module per stage.

- ``controls``: outbound halts (kill switch, token failure, circuit, surge).
- ``pipeline``: preparation hand-off (sending from the same task) and the sweep that
  enqueues due work.
- ``converting``: the isolated conversion step (HTML and images), bounded in time,
  CPU, memory and pages, in few slots, then sending from the same task.
- ``sending``: claim, post, classify the answer.
- ``tracking``: apply Connect statuses (changes feed first, per-document fallback).
- ``tracker``: the one loop that tracks while anything is on its way, and keeps the
  clock.
- ``clock``: each second, queue what came due (retries, circuit trials, lost first
  sends, the settling of expired claims and unknown outcomes).
- ``leases``: a claim is its worker's while the worker renews its lease.
- ``send_rules``: whether a document may be sent now, and the backoff between
  attempts.
- ``reconciling``: settle uncertain sends by idempotency key; re-check destinations.
"""
