"""Connect's changes feed: read each sending organisation's feed from its cursor
and apply each page of statuses, one transaction per page.

The cursor moves only with the changes it covers. A change can arrive before the
worker that posted has recorded the GUID (or after it died): it is matched by our
idempotency key instead. A feed that fails is recorded (since when), the poll
(``polling``) tracks documents meanwhile, and the operations watch raises an
incident if it lasts.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from docflow.models import SendingOrganisation
from transmissions.channels.connect.adapter import DocumentStatus as ConnectStatus
from transmissions.channels.connect.connections import connect_client_for
from transmissions.channels.connect.errors import (
    ConnectAuthFailed,
    ConnectConfigurationError,
    ConnectError,
)
from transmissions.channels.connect.tracking.statuses import (
    StatusPage,
    page_documents_lock,
    page_finish,
    page_posted_record,
    page_status_apply,
)
from transmissions.engine.outcomes import credentials_halt
from transmissions.models import ChangesCursor, Transmission, TransmissionState

logger = logging.getLogger(__name__)


def _latest_per_guid(changes: list[ConnectStatus]) -> list[ConnectStatus]:
    """Keep every change in order (each is a status change to audit), dropping exact
    repeats of the same status for the same document."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for change in changes:
        key = (change.guid, change.status_code)
        if key not in seen:
            seen.add(key)
            kept.append(change)
    return kept


@transaction.atomic
def _apply_changes_page(
    organisation_id: int, changes: list[ConnectStatus], read_from: str, cursor: str
) -> int:
    position = ChangesCursor.objects.select_for_update().get(
        sending_organisation_id=organisation_id
    )
    if position.cursor != read_from:
        return 0  # another reader applied this page while we fetched it
    changes = _latest_per_guid(changes)
    by_guid = {
        t.external_id: t
        for t in Transmission.objects.select_for_update(of=("self",))
        .select_related("payload_version")
        .filter(
            sending_organisation_id=organisation_id,
            external_id__in={c.guid for c in changes},
        )
    }
    # A change can arrive before the worker that posted has recorded the GUID (or
    # after it died): match it by our idempotency key instead.
    missing_keys = {
        c.idempotency_key
        for c in changes
        if c.guid not in by_guid and c.idempotency_key
    }
    if missing_keys:
        for t in (
            Transmission.objects.select_for_update(of=("self",))
            .select_related("payload_version")
            .filter(
                sending_organisation_id=organisation_id,
                idempotency_key__in=missing_keys,
            )
        ):
            by_guid.setdefault(t.external_id or t.idempotency_key, t)
    by_key = {t.idempotency_key: t for t in by_guid.values()}
    page = StatusPage(with_items=page_documents_lock(by_key.values()))
    applied = 0
    for change in changes:
        transmission = by_guid.get(change.guid) or by_key.get(change.idempotency_key)
        if transmission is None:
            continue
        if transmission.state == TransmissionState.PENDING:
            page_posted_record(transmission, change, page)
            by_guid[change.guid] = transmission
        if transmission.state != TransmissionState.POSTED:
            continue
        page_status_apply(
            transmission, change, actor=None, profiles=page.profiles, page=page
        )
        applied += 1
    position.cursor = cursor
    position.save(update_fields=["cursor", "updated_at"])
    page_finish(page)
    return applied


def changes_feed_read(
    *, sending_organisation_id: int, max_pages: int = 20, page_size: int = 500
) -> int:
    """Apply Connect's changes feed for one sending organisation from its saved
    cursor; the cursor moves only with the changes it covers, in one transaction."""
    organisation = SendingOrganisation.objects.get(pk=sending_organisation_id)
    ChangesCursor.objects.get_or_create(sending_organisation=organisation)
    client = connect_client_for(organisation)
    applied = 0
    for _ in range(max_pages):
        saved = ChangesCursor.objects.get(sending_organisation=organisation)
        cursor = saved.cursor
        try:
            page = client.changes(cursor=cursor, limit=page_size)
        except (ConnectAuthFailed, ConnectConfigurationError) as exc:
            credentials_halt(sending_organisation=organisation, error=exc)
            break
        except ConnectError as exc:
            # Connect is struggling, or its page cannot be read: the next round
            # starts from the same cursor, the per-document poll tracks documents
            # meanwhile, and the operations watch raises an incident if it lasts.
            logger.warning("Changes feed unavailable: %s", exc)
            changes_feed_failing(saved, failure=str(exc))
            break
        if saved.failing_since is not None:
            changes_feed_reading(saved)
        if not page.changes:
            break
        applied += _apply_changes_page(
            organisation.pk, page.changes, cursor, page.next_cursor
        )
        if len(page.changes) < page_size:
            break
    return applied


def changes_feed_failing(cursor: ChangesCursor, *, failure: str) -> None:
    """Record that a read of the feed failed (since when, if it is the first)."""
    now = timezone.now()
    ChangesCursor.objects.filter(pk=cursor.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    ChangesCursor.objects.filter(pk=cursor.pk).update(last_failure=failure[:255])


def changes_feed_reading(cursor: ChangesCursor) -> None:
    """Record that the feed reads again after failing."""
    ChangesCursor.objects.filter(pk=cursor.pk).update(
        failing_since=None, last_failure=""
    )
