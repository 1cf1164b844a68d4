"""A document's timeline for IG: its whole journey through the real engine and the
real Connect simulator, who looked at it, and who may see the page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils.module_loading import import_string
from django_q.models import OrmQ
from guardian.shortcuts import assign_perm

from audit.models import AccessChannel
from audit.services import access_log_record
from casework.services import (
    work_item_resolve_no_further_action,
    work_item_resolve_resend,
)
from docflow.models import DocumentStatus
from tests.casework.factories import open_item
from tests.factories import SendingOrganisationFactory, UserFactory, submit_document
from tests.samples import VALID_NHS_NUMBER
from tests.transmissions.conftest import simulator  # noqa: F401 (fixture)
from tests.transmissions.engine import (
    connect_to,
    directory_from_scenario,
    ready_document,
)
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import Transmission
from transmissions.pipeline.sending import document_send

pytestmark = pytest.mark.django_db
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
S = DocumentStatus


def person(role, *, organisations=(), superuser=False, username=None, staff=True):
    user = UserFactory(
        password=None,
        is_staff=staff,
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
def clinician(sending_organisation):
    return person(
        "Clinical admin", organisations=[sending_organisation], username="ada"
    )


def timeline_url(document) -> str:
    return reverse("admin:audit_auditevent_timeline", args=[document.public_id])


@pytest.fixture
def run_queued(django_capture_on_commit_callbacks):
    def run() -> list[str]:
        ran = []
        while (task := OrmQ.objects.order_by("id").first()) is not None:
            task.delete()
            with django_capture_on_commit_callbacks(execute=True):
                import_string(task.task["func"])(*task.task["args"])
            ran.append(task.task["func"].rsplit(".", 1)[-1])
        return ran

    return run


@pytest.fixture
def journey(
    simulator,  # noqa: F811
    settings,
    monkeypatch,
    sending_organisation,
    clinician,
    run_queued,
    django_capture_on_commit_callbacks,
):
    """Rejected, resent (new GUID), rejected again, closed with a reason, viewed."""
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    document = ready_document(sending_organisation, "A81005")  # reject:REJ01
    document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_resend(
            work_item=open_item(document), actor=clinician, reason="Practice asked"
        )
    run_queued()
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    with django_capture_on_commit_callbacks(execute=True):
        work_item_resolve_no_further_action(
            work_item=open_item(document),
            actor=clinician,
            reason="Patient has moved away",
        )
    run_queued()
    access_log_record(
        actor=clinician,
        channel=AccessChannel.STAFF_PAGE,
        action="view",
        target_type="document",
        target_id=str(document.public_id),
        reason="Checking the letter before closing",
    )
    document.refresh_from_db()
    assert document.status == S.REJECTION_RESOLVED
    return document


def test_the_timeline_shows_the_whole_journey_in_order(client, ig_officer, journey):
    first, second = Transmission.objects.filter(document=journey).order_by("id")
    client.force_login(ig_officer, backend=MODEL_BACKEND)

    response = client.get(timeline_url(journey))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    entries = response.context["entries"]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    titles = [e.title for e in entries]

    def position(start: str) -> int:
        return next(i for i, t in enumerate(titles) if t.startswith(start))

    assert (
        position("Created")
        < position("Prepared for its destination")
        < position("Posted to Connect")
        < position("Rejected by the practice")
        < position("Resent (new Connect GUID)")
        < position("Rejection resolved (6000)")
    )
    assert any(t.startswith("Claimed for sending: ready → sending") for t in titles)

    details = {e.title: dict(e.details) for e in entries}
    prepared = details[next(t for t in titles if t.startswith("Prepared"))]
    assert prepared["destination"] == "A81005"
    payloads = [e for e in entries if e.kind == "payload"]
    assert {dict(e.details)["SHA-256"] for e in payloads} == set(
        journey.payload_versions.values_list("sha256", flat=True)
    )
    posted = dict(next(e for e in entries if e.title == "Posted to Connect").details)
    assert posted["guid"] == first.external_id
    assert posted["sha256"] == first.payload_version.sha256
    sends = [dict(e.details) for e in entries if e.kind == "transmission"]
    assert [s["Connect GUID"] for s in sends] == [
        first.external_id,
        second.external_id,
    ]
    assert sends[1]["resend of (old GUID → new GUID)"] == (
        f"{first.external_id} → {second.external_id}"
    )
    resent = dict(next(e for e in entries if e.title.startswith("Resent")).details)
    assert (resent["resend of"], resent["guid"]) == (
        first.external_id,
        second.external_id,
    )
    ended = [e for e in entries if e.title == "Work item resolved: no further action"]
    assert len(ended) == 1
    assert ended[0].actor == "ada"
    assert dict(ended[0].details)["reason"] == "Patient has moved away"
    access = [e for e in entries if e.kind == "access"]
    assert [(e.actor, e.details) for e in access] == [
        ("ada", [("reason", "Checking the letter before closing")])
    ]
    # Metadata only: no patient details anywhere on the page.
    body = response.content.decode()
    for detail in (VALID_NHS_NUMBER, "Testpatient", "1950-03-01"):
        assert detail not in body


def test_the_timeline_is_for_ig_officers_within_their_grants(
    client, clinician, sending_organisation
):
    document = submit_document(sending_organisation=sending_organisation)
    elsewhere = submit_document(
        sending_organisation=SendingOrganisationFactory(ods_code="RZZ")
    )
    ig_officer = person(
        "IG officer", organisations=[sending_organisation], username="iggy"
    )

    client.force_login(clinician, backend=MODEL_BACKEND)
    assert client.get(timeline_url(document)).status_code == 403
    client.force_login(ig_officer, backend=MODEL_BACKEND)
    assert client.get(timeline_url(document)).status_code == 200
    assert client.get(timeline_url(elsewhere)).status_code == 404
    client.force_login(person(None, superuser=True, username="root"))
    assert client.get(timeline_url(elsewhere)).status_code == 200


def test_the_timeline_is_linked_from_the_document_and_the_audit_lists(
    client, ig_officer, clinician, sending_organisation
):
    document = submit_document(sending_organisation=sending_organisation)
    access_log_record(
        actor=clinician,
        channel=AccessChannel.STAFF_PAGE,
        action="view",
        target_type="document",
        target_id=str(document.public_id),
        reason="check",
    )
    change = reverse("admin:docflow_document_change", args=[document.pk])
    client.force_login(ig_officer, backend=MODEL_BACKEND)

    assert timeline_url(document) in client.get(change).content.decode()
    audit_list = client.get(reverse("admin:audit_auditevent_changelist"))
    assert timeline_url(document) in audit_list.content.decode()
    access_list = client.get(reverse("admin:audit_accesslog_changelist"))
    assert timeline_url(document) in access_list.content.decode()

    client.force_login(clinician, backend=MODEL_BACKEND)
    page = client.get(change)
    assert page.status_code == 200
    assert timeline_url(document) not in page.content.decode()
