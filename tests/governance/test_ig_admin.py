"""The IG admin over the audit trail and access log: read-only for everyone, filters,
audited CSV export, the chain's status, and the search by NHS number."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from audit.actors import Actor
from audit.models import AccessLog, AuditEvent
from audit.pseudonyms import subject_key
from audit.services import access_log_record, audit_record
from tests.factories import SendingOrganisationFactory, UserFactory, submit_document
from tests.samples import (
    INVALID_CHECKSUM_NHS_NUMBER,
    OTHER_VALID_NHS_NUMBER,
    VALID_NHS_NUMBER,
)

pytestmark = pytest.mark.django_db

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
AUDIT_LIST = reverse("admin:audit_auditevent_changelist")
ACCESS_LIST = reverse("admin:audit_accesslog_changelist")
SEARCH = reverse("admin:audit_auditevent_nhs_number_search")


def person(role: str | None, *, organisations=(), superuser=False, username=None):
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
def clinician(sending_organisation):
    return person(
        "Clinical admin", organisations=[sending_organisation], username="ada"
    )


def signed_in(client, user):
    client.force_login(user, backend=MODEL_BACKEND)
    return client


def listed(response) -> list:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


def nhs_number_absent_from_audit_tables(number: str) -> None:
    for event in AuditEvent.objects.all():
        assert number not in str(event.data) and number not in event.target_id
    for entry in AccessLog.objects.all():
        assert number not in entry.target_id and number not in entry.reason


# -- read-only for everyone -----------------------------------------------------------


@pytest.mark.parametrize("model", ["auditevent", "accesslog"])
def test_nobody_adds_changes_or_deletes_rows_not_even_a_superuser(client, model):
    root = person(None, superuser=True, username="root")
    signed_in(client, root)
    user = UserFactory(username="someone")
    access_log_record(
        actor=user,
        channel="admin",
        action="view",
        target_type="document",
        target_id="d1",
        reason="checking",
    )
    row = (AuditEvent if model == "auditevent" else AccessLog).objects.first()
    before = (row.pk, str(row))
    base = f"admin:audit_{model}"

    assert client.get(reverse(f"{base}_add")).status_code == 403
    assert client.post(reverse(f"{base}_add"), {"action": "x"}).status_code == 403
    change = reverse(f"{base}_change", args=[row.pk])
    assert client.get(change).status_code == 200  # viewing is allowed
    assert client.post(change, {"action": "forged"}).status_code == 403
    delete = reverse(f"{base}_delete", args=[row.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = client.post(
        reverse(f"{base}_changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk]},
    )
    assert bulk.status_code in (200, 302)
    row.refresh_from_db()
    assert (row.pk, str(row)) == before
    assert type(row).objects.filter(pk=row.pk).exists()


def test_staff_without_the_ig_role_cannot_see_the_audit_lists(client, clinician):
    signed_in(client, clinician)
    assert client.get(AUDIT_LIST).status_code == 403
    assert client.get(ACCESS_LIST).status_code == 403


# -- filters --------------------------------------------------------------------------


@pytest.fixture
def events():
    alice = Actor(kind="user", identifier="11", label="alice")
    bob = Actor(kind="user", identifier="12", label="bob")
    made = {
        "a_doc": audit_record(
            action="document.submitted",
            target_type="document",
            target_id="3f1e2d4c-0000-4000-8000-000000000001",
            actor=alice,
        ),
        "b_doc": audit_record(
            action="document.mark_prepared",
            target_type="document",
            target_id="3f1e2d4c-0000-4000-8000-000000000002",
            actor=bob,
        ),
        "b_item": audit_record(
            action="work_item.opened",
            target_type="work_item",
            target_id="item-1",
            data={"document": "3f1e2d4c-0000-4000-8000-000000000001"},
            actor=bob,
        ),
    }
    return made


def test_the_audit_list_filters_by_actor_action_and_document(
    client, ig_officer, events
):
    signed_in(client, ig_officer)

    assert {e.pk for e in listed(client.get(AUDIT_LIST, {"actor": "bob"}))} == {
        events["b_doc"].pk,
        events["b_item"].pk,
    }
    assert {e.pk for e in listed(client.get(AUDIT_LIST, {"actor": "11"}))} == {
        events["a_doc"].pk
    }
    assert {e.pk for e in listed(client.get(AUDIT_LIST, {"action": "document."}))} == {
        events["a_doc"].pk,
        events["b_doc"].pk,
    }
    # A document's own events and its work items' events.
    by_document = listed(
        client.get(AUDIT_LIST, {"document": "3f1e2d4c-0000-4000-8000-000000000001"})
    )
    assert {e.pk for e in by_document} == {events["a_doc"].pk, events["b_item"].pk}
    assert listed(client.get(AUDIT_LIST, {"document": "not-a-uuid"})) == []


def test_the_audit_list_filters_by_date_range(client, ig_officer, events, time_machine):
    today = timezone.localdate()
    time_machine.move_to(timezone.now() + datetime.timedelta(days=3))
    later = audit_record(action="later.event", target_type="x", target_id="1")
    signed_in(client, ig_officer)

    since = today + datetime.timedelta(days=1)
    assert [e.pk for e in listed(client.get(AUDIT_LIST, {"occurred_from": since}))] == [
        later.pk
    ]
    up_to_today = listed(client.get(AUDIT_LIST, {"occurred_to": today.isoformat()}))
    assert later.pk not in {e.pk for e in up_to_today}
    assert {e.pk for e in up_to_today} >= {e.pk for e in events.values()}


def test_the_access_log_filters_by_actor_and_document(client, ig_officer):
    alice = UserFactory(username="alice")
    seen = access_log_record(
        actor=alice,
        channel="staff_page",
        action="view",
        target_type="document",
        target_id="3f1e2d4c-0000-4000-8000-000000000001",
        reason="query from the practice",
    )
    access_log_record(
        actor=UserFactory(username="bob"),
        channel="api",
        action="download",
        target_type="document",
        target_id="3f1e2d4c-0000-4000-8000-000000000002",
        reason="re-filing",
    )
    signed_in(client, ig_officer)

    assert listed(client.get(ACCESS_LIST, {"actor": "alice"})) == [seen]
    assert listed(
        client.get(ACCESS_LIST, {"document": "3f1e2d4c-0000-4000-8000-000000000001"})
    ) == [seen]


def test_an_nhs_number_typed_into_a_list_address_goes_no_further(client, ig_officer):
    document = submit_document(sending_organisation=ig_officer_org(ig_officer))
    signed_in(client, ig_officer)
    before = AuditEvent.objects.count()

    for params in ({"q": VALID_NHS_NUMBER}, {"actor": "943 476 5919"}):
        response = client.get(AUDIT_LIST, params)
        assert response.status_code == 302
        assert response["Location"] == AUDIT_LIST
        export = client.post(
            reverse("admin:audit_auditevent_export") + f"?q={VALID_NHS_NUMBER}"
        )
        assert export.status_code == 302
    assert AuditEvent.objects.count() == before
    assert document.nhs_number == VALID_NHS_NUMBER


def ig_officer_org(user):
    from guardian.shortcuts import get_objects_for_user

    from docflow.models import SendingOrganisation

    return get_objects_for_user(
        user, "docflow.access_documents", klass=SendingOrganisation
    ).get()


# -- CSV export ---------------------------------------------------------------------


def _csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_the_filtered_audit_list_exports_as_csv_and_the_export_is_audited(
    client, ig_officer, events
):
    signed_in(client, ig_officer)

    response = client.post(reverse("admin:audit_auditevent_export") + "?actor=bob")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="audit-events-'
    )
    rows = _csv(response)
    assert [(r["sequence"], r["actor_label"], r["action"]) for r in rows] == [
        (str(events["b_doc"].sequence), "bob", "document.mark_prepared"),
        (str(events["b_item"].sequence), "bob", "work_item.opened"),
    ]
    assert rows[1]["data"] == '{"document": "3f1e2d4c-0000-4000-8000-000000000001"}'
    assert rows[0]["hash"] == events["b_doc"].hash
    exported = AuditEvent.objects.get(action="ig.list_exported")
    assert exported.actor_label == "iggy"
    assert exported.target_type == "auditevent"
    assert exported.data == {"filters": {"actor": "bob"}, "rows": 2}


def test_the_access_log_exports_as_csv_with_formula_cells_defused(client, ig_officer):
    access_log_record(
        actor=UserFactory(username="alice"),
        channel="staff_page",
        action="view",
        target_type="document",
        target_id="d1",
        reason="=HYPERLINK(1)",
    )
    signed_in(client, ig_officer)

    response = client.post(reverse("admin:audit_accesslog_export"))

    rows = _csv(response)
    assert [(r["actor_label"], r["reason"]) for r in rows] == [
        ("alice", "'=HYPERLINK(1)")
    ]
    assert AuditEvent.objects.get(action="ig.list_exported").data["rows"] == 1


def test_export_is_a_post_and_needs_the_ig_role(client, clinician, ig_officer):
    signed_in(client, ig_officer)
    assert client.get(reverse("admin:audit_auditevent_export")).status_code == 405
    signed_in(client, clinician)
    assert client.post(reverse("admin:audit_auditevent_export")).status_code == 403
    assert not AuditEvent.objects.filter(action="ig.list_exported").exists()


# -- search by NHS number -------------------------------------------------------------


def test_search_by_nhs_number_finds_the_patients_documents_and_logs_the_search(
    client, ig_officer, sending_organisation
):
    mine = submit_document(sending_organisation=sending_organisation)
    submit_document(
        sending_organisation=sending_organisation, nhs_number=OTHER_VALID_NHS_NUMBER
    )
    signed_in(client, ig_officer)

    response = client.post(
        SEARCH,
        {"nhs_number": "999 000 0018", "reason": "Complaint ref 42 from the patient"},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert [d.public_id for d, _ in response.context["documents"]] == [mine.public_id]
    entry = AccessLog.objects.get(action="search")
    assert (entry.actor_label, entry.channel, entry.target_type) == (
        "iggy",
        "admin",
        "patient",
    )
    assert entry.target_id == subject_key(VALID_NHS_NUMBER)
    assert entry.reason == "Complaint ref 42 from the patient"
    event = AuditEvent.objects.get(action="content.search")
    assert event.data["documents_found"] == 1
    assert event.data["access_log_id"] == entry.pk
    nhs_number_absent_from_audit_tables(VALID_NHS_NUMBER)

    # The result links carry a token, never the number, and filter the lists.
    audit_url = response.context["audit_url"]
    assert VALID_NHS_NUMBER not in audit_url and "subject=" in audit_url
    about = listed(client.get(audit_url))
    assert {(e.action, e.target_id) for e in about} >= {
        ("document.submitted", str(mine.public_id)),
        ("content.search", entry.target_id),
    }
    assert all(e.target_id in (str(mine.public_id), entry.target_id) for e in about)
    assert listed(client.get(response.context["access_url"])) == [entry]


def test_search_sees_only_the_sending_organisations_granted(
    client, ig_officer, sending_organisation
):
    granted = submit_document(sending_organisation=sending_organisation)
    submit_document(sending_organisation=SendingOrganisationFactory(ods_code="RZZ"))
    signed_in(client, ig_officer)

    response = client.post(SEARCH, {"nhs_number": VALID_NHS_NUMBER, "reason": "SAR"})

    assert [d.public_id for d, _ in response.context["documents"]] == [
        granted.public_id
    ]
    assert AuditEvent.objects.get(action="content.search").data["documents_found"] == 1


def test_a_superuser_searches_every_sending_organisation(client, sending_organisation):
    submit_document(sending_organisation=sending_organisation)
    submit_document(sending_organisation=SendingOrganisationFactory(ods_code="RZZ"))
    signed_in(client, person(None, superuser=True, username="root"))

    response = client.post(SEARCH, {"nhs_number": VALID_NHS_NUMBER, "reason": "SAR"})

    assert len(response.context["documents"]) == 2


def test_search_needs_a_reason_and_a_valid_number(client, ig_officer):
    signed_in(client, ig_officer)

    no_reason = client.post(SEARCH, {"nhs_number": VALID_NHS_NUMBER, "reason": " "})
    bad_number = client.post(
        SEARCH, {"nhs_number": INVALID_CHECKSUM_NHS_NUMBER, "reason": "SAR"}
    )

    number_in_reason = client.post(
        SEARCH,
        {"nhs_number": VALID_NHS_NUMBER, "reason": f"SAR for {VALID_NHS_NUMBER}"},
    )

    assert no_reason.status_code == bad_number.status_code == 200
    assert "reason" in no_reason.context["form"].errors
    assert "nhs_number" in bad_number.context["form"].errors
    assert number_in_reason.context["form"].errors["reason"] == [
        "Leave the NHS number out of the reason: it is recorded."
    ]
    assert not AccessLog.objects.exists()


def test_only_ig_officers_and_superusers_may_search(client, clinician):
    signed_in(client, clinician)

    assert client.get(SEARCH).status_code == 403
    response = client.post(SEARCH, {"nhs_number": VALID_NHS_NUMBER, "reason": "x"})

    assert response.status_code == 403
    assert not AccessLog.objects.exists()


def test_the_lists_offer_the_ig_tools_only_to_ig_officers(client, ig_officer):
    signed_in(client, ig_officer)
    body = client.get(AUDIT_LIST).content.decode()
    assert SEARCH in body
    assert reverse("admin:audit_accesslog_subject_access") in body

    system_admin = person("System admin", username="sam")
    system_admin.user_permissions.add(
        *Group.objects.get(name="IG officer").permissions.filter(
            codename__in=["view_auditevent"]
        )
    )
    signed_in(client, type(system_admin).objects.get(pk=system_admin.pk))
    body = client.get(AUDIT_LIST).content.decode()
    assert "Audit chain:" in body
    assert SEARCH not in body
