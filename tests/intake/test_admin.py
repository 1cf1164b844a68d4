"""Source systems and the document type table in the admin: every save audited."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from intake.models import DocumentTypeMapping, SourceSystem
from tests.factories import SendingOrganisationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root", "r@example.invalid", "x")
    client.force_login(user)
    return client, user


def test_adding_a_source_system_in_the_admin_is_audited(superuser_client):
    client, user = superuser_client
    organisation = SendingOrganisationFactory(ods_code="RX1")
    response = client.post(
        "/admin/intake/sourcesystem/add/",
        {
            "code": "rx1-engine",
            "name": "RX1 engine",
            "channel": "mllp",
            "sending_organisation": organisation.pk,
            "is_active": "on",
            "sending_facility": "RX1",
            "sending_application": "EPR",
            "certificate_sha256": "",
            "drop_folder": "",
            "destination_rule": "pd1_3",
            "fixed_destination_ods_code": "",
            "nhs_number_authority": "NHS",
            "mrn_identifier_type": "MR",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    source = SourceSystem.objects.get()
    event = AuditEvent.objects.get(action="source_system.created")
    assert event.target_id == str(source.pk)
    assert event.actor_id == str(user.pk)
    assert event.data["changes"]["sending_facility"] == [None, "RX1"]


def test_changing_the_document_type_table_is_audited(superuser_client):
    client, _user = superuser_client
    row = DocumentTypeMapping.objects.create(
        text="Clinic letter", document_type="other"
    )
    response = client.post(
        f"/admin/intake/documenttypemapping/{row.pk}/change/",
        {
            "source_system": "",
            "text": "Clinic letter",
            "document_type": "clinic_letter",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="document_type_mapping.changed")
    assert event.data["changes"] == {"document_type": ["other", "clinic_letter"]}
