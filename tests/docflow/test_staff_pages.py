"""The staff documents list (keyset pages, rows opening the document's page) and
the document page: metadata and timeline, never the patient's identifiers, only for
someone granted the sending organisation."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from docflow import views
from docflow.models import Document
from tests.factories import (
    VALID_NHS_NUMBER,
    SendingOrganisationFactory,
    UserFactory,
    submit_document,
)

PATIENT_NAME = "Testpatient"


@pytest.fixture
def reader(sending_organisation):
    user = UserFactory(username="ada", password=None)
    assign_perm("docflow.access_documents", user, sending_organisation)
    return user


def document_links(page: str) -> list[str]:
    return re.findall(r'href="(/documents/[^"]+/)"', page)


def test_rows_open_the_documents_page(client, reader, sending_organisation):
    document = submit_document(sending_organisation=sending_organisation)
    client.force_login(reader)

    page = client.get(reverse("staff-home")).content.decode()

    assert document_links(page) == [f"/documents/{document.public_id}/"]
    assert VALID_NHS_NUMBER not in page and PATIENT_NAME not in page


def test_the_list_pages_by_keyset_newest_first(
    client, reader, sending_organisation, monkeypatch
):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    made = [
        submit_document(sending_organisation=sending_organisation) for _ in range(5)
    ]
    client.force_login(reader)

    seen, url, pages = [], reverse("staff-home"), 0
    while url:
        page = client.get(url).content.decode()
        pages += 1
        seen += document_links(page)
        found = re.search(r'href="\?([^"]*)" rel="next"', page)
        url = f"/?{html_lib.unescape(found.group(1))}" if found else None

    assert seen == [f"/documents/{d.public_id}/" for d in reversed(made)]
    assert pages == 3


def test_a_page_deep_in_the_list_takes_the_same_statements_as_the_first(
    client, reader, sending_organisation, monkeypatch
):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for _ in range(5):
        submit_document(sending_organisation=sending_organisation)
    client.force_login(reader)
    first = client.get(reverse("staff-home")).content.decode()
    after = html_lib.unescape(re.search(r'href="\?([^"]*)" rel="next"', first).group(1))

    def counted(url):
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        return len(captured)

    assert counted(reverse("staff-home")) == counted(f"/?{after}")


def test_the_status_filter_reports_a_value_that_is_not_a_status(client, reader):
    client.force_login(reader)

    page = client.get(reverse("staff-home"), {"status": "lost"}).content.decode()

    assert "There is a problem" in page
    assert 'href="#id_status"' in page
    assert re.search(r"<title>Error: Documents", page)


def test_the_document_page_shows_metadata_and_timeline_without_patient_data(
    client, reader, sending_organisation
):
    document = submit_document(
        sending_organisation=sending_organisation,
        source_reference="DEMO-006",
        description="Respiratory clinic letter",
    )
    client.force_login(reader)

    response = client.get(reverse("staff-document", args=[document.public_id]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "DEMO-006" in page and "Respiratory clinic letter" in page
    assert (
        re.search(r'id="timeline".*?</table>', page, re.S).group(0).count('role="row"')
        >= 2
    )
    assert VALID_NHS_NUMBER not in page and PATIENT_NAME not in page
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert PATIENT_NAME not in title


def test_the_document_page_is_not_found_for_another_organisations_document(
    client, reader
):
    elsewhere = submit_document(
        sending_organisation=SendingOrganisationFactory(ods_code="RY2")
    )
    client.force_login(reader)

    response = client.get(reverse("staff-document", args=[elsewhere.public_id]))

    assert response.status_code == 404


def test_the_document_page_needs_sign_in(client, sending_organisation):
    document = submit_document(sending_organisation=sending_organisation)

    response = client.get(reverse("staff-document", args=[document.public_id]))

    assert response.status_code == 302
    assert Document.objects.filter(pk=document.pk).exists()
