"""The channels, one package each; ``registry`` picks one for a document.

Each package (``connect``, ``mesh``) is whole: client, adapter, errors (the
engine's one hierarchy), send, track, settle, resend, and its simulator or demo
pieces. It builds on ``transmissions.engine`` and never imports another channel
(an import contract says so). Its ``channel`` module holds the one object the
engine and the pipeline talk to (``engine.channel.SendChannel``).
"""
