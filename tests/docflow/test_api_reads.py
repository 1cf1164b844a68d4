"""Reading documents over the API and the staff home page: scoped, minimal, logged."""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.auth.models import Permission
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from audit.models import AccessLog, AuditEvent
from docflow.models import Channel, DocumentStatus
from docflow.services import document_transition
from tests.factories import (
    SendingOrganisationFactory,
    UserFactory,
    make_api_key,
    submit_document,
)
from tests.samples import VALID_NHS_NUMBER, pdf_bytes

pytestmark = pytest.mark.django_db

S = DocumentStatus
PROBLEM_JSON = "application/problem+json"
FAMILY_NAME = "Zzyzxpatient"
GIVEN_NAMES = "Quillon"
BIRTH_DATE = datetime.date(1947, 6, 23)
T0 = datetime.datetime(2024, 3, 1, 9, 0, tzinfo=datetime.UTC)


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def submitted_by(api_key, **overrides):
    key, _ = api_key
    return submit_document(
        sending_organisation=key.sending_organisation,
        actor=key,
        patient_family_name=FAMILY_NAME,
        patient_given_names=GIVEN_NAMES,
        patient_birth_date=BIRTH_DATE,
        **overrides,
    )


def submitted_at(moment: datetime.datetime, **kwargs):
    with time_machine.travel(moment, tick=False):
        return submit_document(**kwargs)


def listed_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def grant_content_access(api_key) -> None:
    key, _ = api_key
    key.user.user_permissions.add(
        Permission.objects.get(codename="view_document_content")
    )


def assert_no_patient_data(text: str) -> None:
    for detail in (VALID_NHS_NUMBER, FAMILY_NAME, GIVEN_NAMES, BIRTH_DATE.isoformat()):
        assert detail not in text


@pytest.fixture
def other_organisation_key():
    return make_api_key(
        sending_organisation=SendingOrganisationFactory(ods_code="RY2"), name="Other"
    )


# Detail.


def test_detail_shows_status_destination_timeline_and_transmissions(
    api_client, api_key
):
    from transmissions.models import Transmission

    document = submitted_by(api_key, destination_ods_code="A81005")
    document_transition(document=document, transition="mark_prepared")
    document = document_transition(document=document, transition="claim_for_sending")
    transmission = Transmission.objects.create(
        document=document,
        payload_version=document.payload_versions.get(),
        sending_organisation=document.sending_organisation,
        channel=Channel.CONNECT,
        destination_ods_code="A81005",
        idempotency_key="tx-1",
        external_id="6f0c2a9e-guid",
        status_code=4002,
        attempts=1,
    )

    response = api_client.get(f"/api/v1/documents/{document.public_id}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(document.public_id)
    assert body["status"] == S.SENDING
    assert body["destination_ods_code"] == "A81005"
    assert body["sending_organisation"] == "RX1"
    assert [
        (entry["action"], entry["from_status"], entry["to_status"])
        for entry in body["timeline"]
    ] == [
        ("document.submitted", None, None),
        ("document.mark_prepared", S.SUBMITTED, S.READY),
        ("document.claim_for_sending", S.READY, S.SENDING),
    ]
    assert body["timeline"][0]["actor_kind"] == "api_client"
    [sent] = body["transmissions"]
    assert sent["id"] == str(transmission.public_id)
    assert sent["external_id"] == "6f0c2a9e-guid"
    assert sent["status_code"] == 4002
    [version] = body["payload_versions"]
    assert version["media_type"] == "application/pdf"


def test_detail_never_contains_patient_identifiers(api_client, api_key):
    document = submitted_by(api_key)

    response = api_client.get(f"/api/v1/documents/{document.public_id}")

    assert response.status_code == 200
    assert_no_patient_data(response.content.decode())


def test_list_never_contains_patient_identifiers(api_client, api_key):
    submitted_by(api_key)

    response = api_client.get("/api/v1/documents")

    assert len(listed_ids(response)) == 1
    assert_no_patient_data(response.content.decode())


def test_unknown_document_is_404_problem(api_client):
    response = api_client.get("/api/v1/documents/00000000-0000-4000-8000-000000000000")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM_JSON
    assert response.json()["status"] == 404


# Cross-organisation isolation.


def test_another_organisations_document_is_not_found(api_key, other_organisation_key):
    document = submitted_by(api_key)
    other = client_for(other_organisation_key[1])

    response = other.get(f"/api/v1/documents/{document.public_id}")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM_JSON
    assert str(document.public_id) not in response.content.decode()


def test_another_organisations_content_is_not_found_even_with_permission(
    api_key, other_organisation_key
):
    document = submitted_by(api_key)
    grant_content_access(other_organisation_key)
    other = client_for(other_organisation_key[1])

    response = other.post(
        f"/api/v1/documents/{document.public_id}/content", {"reason": "curious"}
    )

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM_JSON
    assert AccessLog.objects.count() == 0


def test_list_shows_only_the_callers_organisation(
    api_client, api_key, other_organisation_key
):
    mine = submitted_by(api_key)
    theirs = submitted_by(other_organisation_key)

    assert listed_ids(api_client.get("/api/v1/documents")) == [str(mine.public_id)]
    assert listed_ids(
        client_for(other_organisation_key[1]).get("/api/v1/documents")
    ) == [str(theirs.public_id)]


# Filters and pagination.


def test_list_filters_by_status(api_client, api_key):
    held = submitted_by(api_key)
    submitted_by(api_key)
    document_transition(document=held, transition="hold_before_send")

    response = api_client.get("/api/v1/documents", {"status": "held"})

    assert listed_ids(response) == [str(held.public_id)]


def test_list_filters_by_destination_ignoring_case(api_client, api_key):
    wanted = submitted_by(api_key, destination_ods_code="A81002")
    submitted_by(api_key, destination_ods_code="A81003")

    response = api_client.get("/api/v1/documents", {"destination": "a81002"})

    assert listed_ids(response) == [str(wanted.public_id)]


def test_list_filters_by_creation_time_window(api_client, api_key):
    organisation = api_key[0].sending_organisation
    early, middle, late = (
        submitted_at(
            T0 + datetime.timedelta(hours=h), sending_organisation=organisation
        )
        for h in (0, 1, 2)
    )

    after = api_client.get(
        "/api/v1/documents",
        {"created_after": (T0 + datetime.timedelta(minutes=30)).isoformat()},
    )
    before = api_client.get(
        "/api/v1/documents",
        {"created_before": (T0 + datetime.timedelta(minutes=90)).isoformat()},
    )
    between = api_client.get(
        "/api/v1/documents",
        {
            "created_after": (T0 + datetime.timedelta(minutes=30)).isoformat(),
            "created_before": (T0 + datetime.timedelta(minutes=90)).isoformat(),
        },
    )

    assert listed_ids(after) == [str(late.public_id), str(middle.public_id)]
    assert listed_ids(before) == [str(middle.public_id), str(early.public_id)]
    assert listed_ids(between) == [str(middle.public_id)]


def test_list_filters_by_source_reference(api_client, api_key):
    wanted = submitted_by(api_key, source_reference="LETTER-42")
    submitted_by(api_key, source_reference="LETTER-43")

    response = api_client.get("/api/v1/documents", {"source_reference": "LETTER-42"})

    assert listed_ids(response) == [str(wanted.public_id)]


def test_cursor_pagination_returns_every_document_once_newest_first(
    api_client, api_key
):
    organisation = api_key[0].sending_organisation
    documents = [
        submitted_at(
            T0 + datetime.timedelta(minutes=minute), sending_organisation=organisation
        )
        for minute in range(5)
    ]
    newest_first = [str(d.public_id) for d in reversed(documents)]

    seen, pages = [], []
    response = api_client.get("/api/v1/documents", {"page_size": 2})
    while True:
        page = listed_ids(response)
        pages.append(page)
        seen.extend(page)
        next_link = response.json()["next"]
        if next_link is None:
            break
        parts = urlsplit(next_link)
        response = api_client.get(f"{parts.path}?{parts.query}")

    assert [len(page) for page in pages] == [2, 2, 1]
    assert seen == newest_first


def test_cursor_pagination_keeps_documents_created_in_the_same_instant(
    api_client, api_key
):
    organisation = api_key[0].sending_organisation
    documents = [submitted_at(T0, sending_organisation=organisation) for _ in range(3)]

    seen = []
    url = "/api/v1/documents?page_size=2"
    while url:
        response = api_client.get(url)
        seen.extend(listed_ids(response))
        next_link = response.json()["next"]
        url = next_link and "{0.path}?{0.query}".format(urlsplit(next_link))

    assert sorted(seen) == sorted(str(d.public_id) for d in documents)
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45T00:00"}, "created_before"),
        ({"destination": "X" * 11}, "destination"),
    ],
)
def test_bad_filter_value_is_400_problem_naming_the_parameter(
    api_client, params, field
):
    response = api_client.get("/api/v1/documents", params)

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 400
    assert [error["field"] for error in body["errors"]] == [field]


# Authentication.


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/documents",
        "/api/v1/documents/00000000-0000-4000-8000-000000000000",
        "/api/v1/documents/00000000-0000-4000-8000-000000000000/content",
    ],
)
def test_unauthenticated_request_is_401_problem(path):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM_JSON
    assert response.json()["status"] == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_wrong_api_key_is_401_problem(api_key):
    key, _ = api_key
    forged = f"{key.prefix}.{'x' * 32}"

    response = client_for(forged).get("/api/v1/documents")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM_JSON


def test_revoked_api_key_is_401(api_client, api_key):
    key, _ = api_key
    key.revoked = True
    key.save(update_fields=["revoked"])

    response = api_client.get("/api/v1/documents")

    assert response.status_code == 401


# Content access.


def test_content_without_permission_is_403_and_not_logged(api_client, api_key):
    document = submitted_by(api_key)

    response = api_client.post(
        f"/api/v1/documents/{document.public_id}/content", {"reason": "clinical query"}
    )

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM_JSON
    assert AccessLog.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="content.").exists()


@pytest.mark.parametrize("params", [{}, {"reason": ""}, {"reason": "  "}])
def test_content_without_a_reason_is_400_and_not_logged(api_client, api_key, params):
    document = submitted_by(api_key)
    grant_content_access(api_key)

    response = api_client.post(
        f"/api/v1/documents/{document.public_id}/content", params
    )

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM_JSON
    assert [error["field"] for error in response.json()["errors"]] == ["reason"]
    assert AccessLog.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="content.").exists()


def test_content_with_permission_and_reason_returns_the_original_bytes_and_logs_it(
    api_client, api_key
):
    key, _ = api_key
    content = pdf_bytes("The letter itself")
    document = submitted_by(api_key, content=content)
    grant_content_access(api_key)

    response = api_client.post(
        f"/api/v1/documents/{document.public_id}/content",
        {"reason": "Practice asked for a copy"},
    )

    assert response.status_code == 200
    assert response.content == content
    assert response["Content-Type"] == "application/pdf"
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{document.public_id}.pdf"'
    )
    [entry] = AccessLog.objects.all()
    assert (entry.actor_kind, entry.actor_id) == ("api_client", key.prefix)
    assert entry.channel == "api"
    assert entry.action == "download"
    assert entry.target_id == str(document.public_id)
    assert entry.reason == "Practice asked for a copy"
    [event] = AuditEvent.objects.filter(action="content.download")
    assert event.target_id == str(document.public_id)
    assert event.data["access_log_id"] == entry.pk
    assert event.actor_id == key.prefix


# Staff users: session authentication and guardian grants.


@pytest.fixture
def two_organisations_documents():
    granted = SendingOrganisationFactory(ods_code="RG1", name="Granted Trust")
    hidden = SendingOrganisationFactory(ods_code="RH1", name="Hidden Trust")
    return (
        submit_document(sending_organisation=granted),
        submit_document(sending_organisation=hidden),
    )


@pytest.fixture
def granted_staff(two_organisations_documents):
    granted_document, _ = two_organisations_documents
    user = UserFactory(username="clinical.admin")
    assign_perm("docflow.access_documents", user, granted_document.sending_organisation)
    return user


def test_staff_api_list_shows_only_granted_organisations(
    client, granted_staff, two_organisations_documents
):
    granted_document, hidden_document = two_organisations_documents
    client.force_login(granted_staff)

    response = client.get("/api/v1/documents")

    assert listed_ids(response) == [str(granted_document.public_id)]
    hidden = client.get(f"/api/v1/documents/{hidden_document.public_id}")
    assert hidden.status_code == 404


def test_staff_see_organisations_granted_to_their_group(
    client, two_organisations_documents
):
    from django.contrib.auth.models import Group

    granted_document, _ = two_organisations_documents
    team = Group.objects.create(name="Granted Trust clinical admin")
    assign_perm("docflow.access_documents", team, granted_document.sending_organisation)
    user = UserFactory(username="team.member")
    user.groups.add(team)
    client.force_login(user)

    assert listed_ids(client.get("/api/v1/documents")) == [
        str(granted_document.public_id)
    ]


def test_staff_without_grants_sees_no_documents(client, two_organisations_documents):
    client.force_login(UserFactory(username="new.starter"))

    assert listed_ids(client.get("/api/v1/documents")) == []
    page = client.get("/")
    assert page.status_code == 200
    assert "No documents you can see." in page.content.decode()


def test_superuser_sees_every_organisation(client, two_organisations_documents):
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))

    assert sorted(listed_ids(client.get("/api/v1/documents"))) == sorted(
        str(d.public_id) for d in two_organisations_documents
    )


def test_staff_home_lists_only_granted_organisations(
    client, granted_staff, two_organisations_documents
):
    granted_document, hidden_document = two_organisations_documents
    client.force_login(granted_staff)

    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert str(granted_document.public_id) in page
    assert str(hidden_document.public_id) not in page
    assert "RH1" not in page
    assert VALID_NHS_NUMBER not in page


def test_staff_home_filters_by_status(
    client, granted_staff, two_organisations_documents
):
    granted_document, _ = two_organisations_documents
    held = submit_document(sending_organisation=granted_document.sending_organisation)
    document_transition(document=held, transition="hold_before_send")
    client.force_login(granted_staff)

    page = client.get("/", {"status": "held"}).content.decode()

    assert str(held.public_id) in page
    assert str(granted_document.public_id) not in page


def test_staff_home_requires_login(two_organisations_documents):
    from django.test import Client

    response = Client().get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
