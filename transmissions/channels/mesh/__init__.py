"""NHS MESH, whole: the only code that speaks MESH.

- ``client``: wraps NHS England's ``mesh_client`` (auth tokens, TLS, chunking) and
  returns typed results (``answers``); ``connections`` builds a client from a
  mailbox's secrets; ``mailboxes`` validates them (the handshake).
- ``errors``: MESH's names for the engine's one error hierarchy; ``halts``: refused
  credentials stop the organisation.
- ``itk3``: the ITK3 message we send and the acknowledgements that come back.
- ``routing``: the route over MESH, and when MESH takes what Connect cannot.
- ``sending``: one upload; ``outcomes``: what MESH reports about it.
- ``inbox`` and ``tracking``: reports and acknowledgements from the inboxes, and
  tracking messages with no news.
- ``settling``: uncertain uploads settled by the message's local id.
- ``channel``: the object the registry holds for MESH.
- ``demo_setup`` and ``demo_practice``: the demo mailbox and a practice that
  answers.
"""
