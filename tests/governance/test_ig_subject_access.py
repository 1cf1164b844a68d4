"""Subject access request: everything held about one NHS number, as one download,
access-logged and audited without the number in clear."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.models import AccessChannel, AccessLog, AuditEvent
from audit.pseudonyms import subject_key
from audit.services import access_log_record
from casework.services import work_item_sync_for_document
from docflow.preparation import document_prepare
from tests.factories import SendingOrganisationFactory, UserFactory, submit_document
from tests.samples import OTHER_VALID_NHS_NUMBER, VALID_NHS_NUMBER

pytestmark = pytest.mark.django_db
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
SAR = reverse("admin:audit_accesslog_subject_access")
SEARCH = reverse("admin:audit_auditevent_nhs_number_search")


def person(role, *, organisations=(), superuser=False, username=None):
    user = UserFactory(
        password=None,
        is_staff=True,
        is_superuser=superuser,
        **({"username": username} if username else {}),
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    for organisation in organisations:
        assign_perm("docflow.access_documents", user, organisation)
    return type(user).objects.get(pk=user.pk)


@pytest.fixture(autouse=True)
def _admin_without_second_factor(settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False


@pytest.fixture
def ig_officer(sending_organisation):
    return person("IG officer", organisations=[sending_organisation], username="iggy")


@pytest.fixture
def held(sending_organisation):
    """A document held in preparation (unknown destination), with its work item,
    and a colleague's look at its content."""
    document = submit_document(
        sending_organisation=sending_organisation, destination_ods_code="ZZZ99"
    )
    document = document_prepare(document_id=document.pk).document
    work_item_sync_for_document(document=document)
    access_log_record(
        actor=UserFactory(username="ada"),
        channel=AccessChannel.STAFF_PAGE,
        action="view",
        target_type="document",
        target_id=str(document.public_id),
        reason="Checking the destination",
    )
    return document


def test_the_export_holds_everything_about_the_patient_and_is_audited(
    client, ig_officer, held, sending_organisation
):
    someone_else = submit_document(
        sending_organisation=sending_organisation, nhs_number=OTHER_VALID_NHS_NUMBER
    )
    elsewhere = submit_document(
        sending_organisation=SendingOrganisationFactory(ods_code="RZZ")
    )
    client.force_login(ig_officer, backend=MODEL_BACKEND)
    client.post(SEARCH, {"nhs_number": VALID_NHS_NUMBER, "reason": "Complaint 7"})

    response = client.post(
        SAR, {"nhs_number": "999-000-0018", "reason": "SAR received 1 March"}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="subject-access-')
    assert VALID_NHS_NUMBER not in disposition
    bundle = json.loads(response.content)
    assert bundle["generated_by"] == "iggy"
    assert bundle["reason"] == "SAR received 1 March"
    assert [d["public_id"] for d in bundle["documents"]] == [str(held.public_id)]
    document = bundle["documents"][0]
    assert (document["nhs_number"], document["status"]) == (VALID_NHS_NUMBER, "held")
    assert document["payload_versions"][0]["sha256"] == (
        held.payload_versions.get().sha256
    )
    assert str(someone_else.public_id) not in response.content.decode()
    assert str(elsewhere.public_id) not in response.content.decode()
    assert [(w["document"], w["status"]) for w in bundle["work_items"]] == [
        (str(held.public_id), "open")
    ]
    assert bundle["transmissions"] == []
    assert [
        (a["actor_label"], a["action"], a["reason"]) for a in bundle["access_log"]
    ] == [
        ("ada", "view", "Checking the destination"),
        ("iggy", "search", "Complaint 7"),
    ]
    assert bundle["counts"] == {
        "documents": 1,
        "transmissions": 0,
        "work_items": 1,
        "access_log": 2,
    }

    entry = AccessLog.objects.get(action="export")
    assert (entry.actor_label, entry.target_type, entry.target_id, entry.reason) == (
        "iggy",
        "patient",
        subject_key(VALID_NHS_NUMBER),
        "SAR received 1 March",
    )
    event = AuditEvent.objects.get(action="content.export")
    assert event.actor_label == "iggy"
    assert event.data["reason"] == "SAR received 1 March"
    assert event.data["records"] == bundle["counts"]
    for row in AuditEvent.objects.all():
        assert VALID_NHS_NUMBER not in json.dumps(row.data)
        assert VALID_NHS_NUMBER not in row.target_id
    assert not AccessLog.objects.filter(target_id__contains=VALID_NHS_NUMBER).exists()


def test_only_ig_officers_and_superusers_may_export(client, held):
    clinician = person("Clinical admin", username="ada2")
    client.force_login(clinician, backend=MODEL_BACKEND)

    assert client.get(SAR).status_code == 403
    response = client.post(SAR, {"nhs_number": VALID_NHS_NUMBER, "reason": "x"})

    assert response.status_code == 403
    assert not AccessLog.objects.filter(action="export").exists()
    client.force_login(person(None, superuser=True, username="root"))
    response = client.post(SAR, {"nhs_number": VALID_NHS_NUMBER, "reason": "SAR"})
    assert len(json.loads(response.content)["documents"]) == 1


def test_an_export_needs_a_reason(client, ig_officer, held):
    client.force_login(ig_officer, backend=MODEL_BACKEND)

    response = client.post(SAR, {"nhs_number": VALID_NHS_NUMBER, "reason": ""})

    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert not AccessLog.objects.filter(action="export").exists()


def test_the_command_reads_the_number_from_stdin_and_writes_a_private_file(
    ig_officer, held, tmp_path, monkeypatch
):
    monkeypatch.setattr("sys.stdin", io.StringIO(VALID_NHS_NUMBER + "\n"))
    out = io.StringIO()

    call_command(
        "subject_access_export",
        user="iggy",
        reason="SAR by post",
        output_dir=str(tmp_path),
        stdout=out,
    )

    (written,) = tmp_path.glob("subject-access-*.json")
    assert VALID_NHS_NUMBER not in written.name
    assert written.stat().st_mode & 0o777 == 0o600
    assert json.loads(written.read_text())["counts"]["documents"] == 1
    assert "1 documents" in out.getvalue()
    assert AccessLog.objects.get(action="export").reason == "SAR by post"


def test_the_command_refuses_people_outside_the_ig_role(held, tmp_path, monkeypatch):
    person("Clinical admin", username="ada3")
    monkeypatch.setattr("sys.stdin", io.StringIO(VALID_NHS_NUMBER + "\n"))

    with pytest.raises(CommandError, match="Only IG officers"):
        call_command(
            "subject_access_export",
            user="ada3",
            reason="SAR",
            output_dir=str(tmp_path),
        )
    assert list(tmp_path.glob("subject-access-*")) == []
