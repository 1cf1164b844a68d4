"""The admin's own name and style sheet, no Save on pages nothing can change, and
every filter choice a link with text."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import SendingOrganisationFactory, UserFactory, submit_document
from transmissions.models import Channel, Transmission, TransmissionState

pytestmark = pytest.mark.django_db

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture
def superuser_client(client, settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False
    user = UserFactory(password=None, is_staff=True, is_superuser=True)
    client.force_login(user, backend=MODEL_BACKEND)
    return client


@pytest.fixture
def transmission():
    organisation = SendingOrganisationFactory()
    document = submit_document(sending_organisation=organisation)
    return Transmission.objects.create(
        document=document,
        payload_version=document.payload_versions.first(),
        sending_organisation=organisation,
        channel=Channel.CONNECT,
        destination_ods_code="A81001",
        idempotency_key=f"{document.public_id}.1",
        state=TransmissionState.POSTED,
        posted_at=timezone.now(),
    )


def test_the_admin_is_named_docflow_and_loads_its_style_sheet(superuser_client):
    page = superuser_client.get(reverse("admin:index")).content.decode()

    assert "<title>docflow administration | docflow administration</title>" in page
    assert '<div id="site-name"><a href="/admin/">docflow administration</a>' in page
    assert "Django administration" not in page
    assert "/static/docflow/admin.css" in page


def test_read_only_documents_and_transmissions_offer_no_save(
    superuser_client, transmission
):
    for url in (
        reverse("admin:docflow_document_change", args=[transmission.document.pk]),
        reverse("admin:transmissions_transmission_change", args=[transmission.pk]),
    ):
        response = superuser_client.get(url)
        assert response.status_code == 200, url
        assert response.context["has_change_permission"] is False, url
        assert 'name="_save"' not in response.content.decode(), url
        # Posting changes nothing either.
        assert (
            superuser_client.post(url, {"destination_ods_code": "B1"}).status_code
            == 403
        )


def test_a_blank_route_reason_is_a_named_filter_choice(superuser_client, transmission):
    Transmission.objects.create(
        document=transmission.document,
        payload_version=transmission.payload_version,
        sending_organisation=transmission.sending_organisation,
        channel=Channel.MESH,
        destination_ods_code="A81001",
        idempotency_key=f"{transmission.document.public_id}.2",
        route_reason="size",
    )
    changelist = reverse("admin:transmissions_transmission_changelist")

    page = superuser_client.get(changelist).content.decode()
    assert ">Destination profile&#x27;s default</a>" in page
    assert 'href="?route_reason="' not in page

    blank = superuser_client.get(changelist, {"route_reason": "(default)"})
    assert [t.pk for t in blank.context["cl"].result_list] == [transmission.pk]
    sized = superuser_client.get(changelist, {"route_reason": "size"})
    assert [t.route_reason for t in sized.context["cl"].result_list] == ["size"]
