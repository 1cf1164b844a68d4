"""Deliver incident alerts by email and webhook: metadata only, failures logged and
never raised (an alert that cannot go must not stop the work that raised it)."""

from __future__ import annotations

import logging

import httpx
from django.conf import settings
from django.core.mail import send_mail

from operations.models import (
    IncidentNotification,
    NotificationEvent,
    NotificationStatus,
)

logger = logging.getLogger(__name__)


def notification_message(notification: IncidentNotification) -> dict:
    """What an alert says: kind, scope, severity, state and counts; no patient data."""
    incident = notification.incident
    return {
        "event": notification.event,
        "incident": str(incident.public_id),
        "kind": incident.kind,
        "scope": incident.scope,
        "severity": incident.severity,
        "state": incident.state,
        "summary": incident.summary,
        "details": incident.details,
        "opened_at": incident.opened_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat()
        if incident.resolved_at
        else None,
    }


def _subject(notification: IncidentNotification) -> str:
    prefix = {
        NotificationEvent.OPENED: "Incident opened",
        NotificationEvent.REMINDER: "Incident still open",
        NotificationEvent.RESOLVED: "Incident resolved",
    }[notification.event]
    incident = notification.incident
    return f"[docflow {incident.severity}] {prefix}: {incident.summary}"[:200]


def _email(notification: IncidentNotification, message: dict) -> str:
    recipients = settings.DOCFLOW_OPS_ALERT_EMAILS
    if not recipients:
        return NotificationStatus.SKIPPED
    body = "\n".join(f"{key}: {value}" for key, value in message.items())
    try:
        send_mail(
            _subject(notification),
            body,
            settings.DOCFLOW_OPS_ALERT_FROM,
            recipients,
        )
    except Exception as exc:  # any mail failure is only logged
        logger.warning(
            "incident email failed: notification=%s error=%s",
            notification.pk,
            type(exc).__name__,
        )
        return NotificationStatus.FAILED
    return NotificationStatus.SENT


def _webhook(notification: IncidentNotification, message: dict) -> str:
    url = settings.DOCFLOW_OPS_WEBHOOK_URL
    if not url:
        return NotificationStatus.SKIPPED
    try:
        response = httpx.post(
            url, json=message, timeout=settings.DOCFLOW_OPS_WEBHOOK_TIMEOUT_SECONDS
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning(
            "incident webhook failed: notification=%s error=%s",
            notification.pk,
            type(exc).__name__,
        )
        return NotificationStatus.FAILED
    return NotificationStatus.SENT


def notification_deliver(*, notification_id: int) -> IncidentNotification | None:
    """Send one pending alert on every configured channel, once (a second delivery
    of the same task finds it no longer pending)."""
    claimed = IncidentNotification.objects.filter(
        pk=notification_id,
        email_status=NotificationStatus.PENDING,
        webhook_status=NotificationStatus.PENDING,
        error="",
    ).update(error="delivering")
    if claimed != 1:
        return None
    notification = IncidentNotification.objects.select_related("incident").get(
        pk=notification_id
    )
    message = notification_message(notification)
    notification.email_status = _email(notification, message)
    notification.webhook_status = _webhook(notification, message)
    notification.error = ""
    notification.save(update_fields=["email_status", "webhook_status", "error"])
    return notification
