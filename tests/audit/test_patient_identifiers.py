"""Patient identifiers are stored once: not in history rows, not in reasons, and
the content-download reason never travels in a URL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from audit.models import AccessChannel, AccessLog, AuditEvent
from audit.pseudonyms import subject_key
from audit.services import access_log_record
from docflow.models import Document
from tests.factories import submit_document
from tests.samples import VALID_NHS_NUMBER

pytestmark = pytest.mark.django_db

SPACED = f"{VALID_NHS_NUMBER[:3]} {VALID_NHS_NUMBER[3:6]} {VALID_NHS_NUMBER[6:]}"


def test_document_history_rows_carry_no_patient_identifier():
    document = submit_document(
        nhs_number=VALID_NHS_NUMBER, patient_family_name="Zyxwardine"
    )

    history = Document.history.model
    columns = {
        column.name
        for column in connection.introspection.get_table_description(
            connection.cursor(), history._meta.db_table
        )
    }
    assert document.history.count() >= 1
    assert not columns & {
        "nhs_number",
        "patient_family_name",
        "patient_given_names",
        "patient_birth_date",
    }
    assert "status" in columns


@pytest.mark.parametrize("written", [VALID_NHS_NUMBER, SPACED])
def test_an_nhs_number_in_a_reason_is_stored_as_its_keyed_hash(written):
    entry = access_log_record(
        actor=None,
        channel=AccessChannel.STAFF_PAGE,
        action="view",
        target_type="document",
        target_id="doc-1",
        reason=f"Patient {written} rang the practice",
    )

    stored = AccessLog.objects.get(pk=entry.pk).reason
    assert stored == f"Patient [nhs:{subject_key(VALID_NHS_NUMBER)}] rang the practice"
    assert VALID_NHS_NUMBER not in stored and SPACED not in stored


def test_the_content_download_reason_goes_in_the_body_and_a_url_reason_is_refused(
    api_client, api_key
):
    key, _ = api_key
    key.user.user_permissions.add(
        Permission.objects.get(codename="view_document_content")
    )
    document = submit_document(sending_organisation=key.sending_organisation)
    url = f"/api/v1/documents/{document.public_id}/content"

    in_url = api_client.get(url, {"reason": "Practice asked for a copy"})
    in_body = api_client.post(url, {"reason": "Practice asked for a copy"})

    assert in_url.status_code == 405
    assert in_body.status_code == 200
    assert AccessLog.objects.get().reason == "Practice asked for a copy"
    assert AuditEvent.objects.filter(action="content.download").count() == 1
