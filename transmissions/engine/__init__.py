"""The channel-neutral engine: what every send does, whatever carries it.

- ``send_rules``: whether a document may be sent now, the result of a send, and
  the backoff between attempts.
- ``claims``: claim a ready document for one send (``ready`` -> ``sending``) and
  ready its transmission and key.
- ``outcomes``: what a failed send means: retry with backoff, outcome unknown,
  held, or the organisation halted.
- ``settling``: the neutral steps of settling uncertain sends.
- ``moves``: ``document_move``, the one way transmissions moves a document and
  keeps its work item in step.
- ``controls``: outbound halts (kill switch, credentials, circuits, surges,
  destination pauses).
- ``leases``: a claim is its worker's while the worker renews its lease.
- ``errors``: the one error hierarchy; each class says whether a retry is safe.
- ``channel``: what the engine asks of a channel (``SendChannel``).

The engine imports no channel (an import contract says so); the pipeline
(``transmissions.pipeline``) reaches channels through ``channels.registry``.
"""
