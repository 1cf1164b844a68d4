"""Migrations that change existing rows."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from casework.models import WorkItem
from tests.casework.factories import document_in, open_item
from tests.factories import SendingOrganisationFactory, submit_document

BEFORE_SENDER_COPY = ("casework", "0005_work_item_active_queue_index")
sender_copy = importlib.import_module(
    "casework.migrations.0006_work_item_sending_organisation"
)


def test_the_copy_fills_in_history_rows_from_their_documents(
    sending_organisation, practices
):
    item = open_item(document_in("rejected", sending_organisation=sending_organisation))
    WorkItem.history.filter(id=item.pk).update(sending_organisation=None)

    sender_copy.copy_sending_organisation(apps, None)

    assert [
        row.sending_organisation for row in WorkItem.history.filter(id=item.pk)
    ] == [sending_organisation]
    item.refresh_from_db()
    assert item.sending_organisation == sending_organisation


@pytest.mark.postgres
@pytest.mark.django_db
def test_items_written_before_the_copy_get_their_documents_sending_organisation():
    # The whole round trip runs in the test's transaction and is rolled back. Foreign
    # keys are checked at once, as PostgreSQL will not alter a table with checks
    # still pending (migrate runs each migration in a transaction of its own).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    documents = [
        submit_document(sending_organisation=SendingOrganisationFactory(ods_code=code))
        for code in ("RX1", "RY2")
    ]
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE_SENDER_COPY])
    old = executor.loader.project_state(BEFORE_SENDER_COPY).apps
    old_item = old.get_model("casework", "WorkItem")
    old_history = old.get_model("casework", "HistoricalWorkItem")
    made = []
    for document in documents:
        item = old_item.objects.create(
            document_id=document.pk, category="preflight", status="open"
        )
        old_history.objects.create(
            id=item.pk,
            public_id=item.public_id,
            document_id=document.pk,
            category="preflight",
            status="open",
            opened_at=item.opened_at,
            history_date=timezone.now(),
            history_type="+",
        )
        made.append((item.pk, document.sending_organisation_id))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    for pk, sender in made:
        assert WorkItem.objects.get(pk=pk).sending_organisation_id == sender
        assert [
            row.sending_organisation_id for row in WorkItem.history.filter(id=pk)
        ] == [sender]
    assert len({sender for _, sender in made}) == 2
