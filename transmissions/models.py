"""Sends of payload versions over a channel, and what came back."""

from __future__ import annotations

import uuid

from django.db import models

from docflow.models import Channel


class Transmission(models.Model):
    """One send of one payload version over one channel to one destination."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    document = models.ForeignKey(
        "docflow.Document", on_delete=models.PROTECT, related_name="transmissions"
    )
    payload_version = models.ForeignKey(
        "docflow.PayloadVersion", on_delete=models.PROTECT, related_name="transmissions"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    destination_ods_code = models.CharField(max_length=10)
    idempotency_key = models.CharField(max_length=64, unique=True)
    external_id = models.CharField(
        "Connect document GUID or MESH message id",
        max_length=64,
        blank=True,
        db_index=True,
    )
    status_code = models.PositiveIntegerField(null=True, blank=True)
    rejection_code = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error_class = models.CharField(max_length=32, blank=True)
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="resends"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.channel} transmission {self.public_id}"
