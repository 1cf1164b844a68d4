"""Kept importable for the transmissions send path while it moves into channel
packages; the payload store is docflow.payloads.store."""

from docflow.payloads.store import payload_blob_read as payload_blob_read
