"""What the MESH channel announces to the apps above it (it never imports them)."""

from django.dispatch import Signal

# An answer came from a mailbox the document was not sent to (kwargs:
# ``quarantined``, a MeshQuarantinedAnswer). operations raises an incident.
suspicious_answer_received = Signal()
