"""Docman Connect, whole: the only code that speaks to Connect.

- ``adapter``: every part of the contract that public documentation does not
  show (``x-assumed`` in shared/connect-api.yaml).
- ``client``: HTTP with timeouts, TLS and token handling; ``connections`` builds
  one per sending organisation.
- ``errors``: Connect's names for the engine's one error hierarchy.
- ``directory``: whether a destination is served (before a send, and the
  reconciliation between sends).
- ``sending`` and ``batches``: one send, and first attempts in batches.
- ``tracking``: statuses, the changes feed, polling, split parents.
- ``settling``: uncertain sends settled by idempotency key.
- ``resending``: resend what Connect holds; resolve a rejection there.
- ``channel``: the object the registry holds for Connect.
- ``simulator``: a Connect simulator over real HTTP, for development and tests.
"""
