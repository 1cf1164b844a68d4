"""Append-only audit trail and access log."""

from __future__ import annotations

from django.db import models


class ActorKind(models.TextChoices):
    USER = "user", "User"
    API_CLIENT = "api_client", "API client"
    SYSTEM = "system", "System"


class AuditChainHead(models.Model):
    """The single row that holds the tip of the hash chain; locked by whoever
    extends the chain (the sealer, or an inline writer on SQLite)."""

    sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "audit chain head"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sequence__gte=0),
                name="audit_chain_head_sequence_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"audit chain at {self.sequence}"


class AuditEvent(models.Model):
    """One thing that happened, chained to the event before it by SHA-256.

    An event is written *unsealed* in the business transaction (``sequence``,
    ``prev_hash`` and ``hash`` empty, no lock) and the sealer chains it within
    seconds of its commit, in the order events become visible (see
    ``audit.sealing``); or it is written sealed under the head lock (inline mode).
    """

    sequence = models.BigIntegerField(unique=True, null=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    # NULL, not "", until sealed: the three are empty together (a CHECK), and an
    # unsealed event must not collide with another on the unique hash.
    prev_hash = models.CharField(max_length=64, null=True)  # noqa: DJ001
    hash = models.CharField(max_length=64, unique=True, null=True)  # noqa: DJ001

    class Meta:
        # Sealed events in chain order, then the unsealed ones in insert order.
        ordering = [models.F("sequence").asc(nulls_last=True), "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sequence__gt=0), name="audit_event_sequence_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    sequence__isnull=True, prev_hash__isnull=True, hash__isnull=True
                )
                | models.Q(
                    sequence__isnull=False, prev_hash__isnull=False, hash__isnull=False
                ),
                name="audit_event_sealed_whole",
            ),
        ]
        indexes = [
            models.Index(fields=["target_type", "target_id", "sequence"]),
            models.Index(fields=["actor_kind", "actor_id", "sequence"]),
            # What the sealer reads: the few events still waiting.
            models.Index(
                fields=["id"],
                condition=models.Q(sequence__isnull=True),
                name="audit_event_unsealed",
            ),
        ]

    def __str__(self) -> str:
        where = self.sequence or "(unsealed)"
        return f"#{where} {self.action} {self.target_type}:{self.target_id}"


class AccessChannel(models.TextChoices):
    API = "api", "API"
    STAFF_PAGE = "staff_page", "Staff page"
    ADMIN = "admin", "Admin"


class AccessLog(models.Model):
    """One look at patient content: who, when, through which channel, and why."""

    occurred_at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=150)
    channel = models.CharField(max_length=16, choices=AccessChannel.choices)
    action = models.CharField(max_length=32)  # view, download, search
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    reason = models.TextField()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_type}:{self.target_id}"
