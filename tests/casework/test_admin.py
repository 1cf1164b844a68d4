"""The admin: reference data is editable, work items are read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from casework.classification import work_item_classify
from casework.models import WorkItemBucket, WorkItemReason
from tests.casework.factories import document_in, open_item
from tests.factories import UserFactory


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(is_superuser=True, is_staff=True, password=None))
    return client


@pytest.mark.parametrize(
    "model", ["team", "workitembucket", "workitemreason", "workitem"]
)
def test_each_casework_admin_lists_its_rows(admin_client, model):
    response = admin_client.get(reverse(f"admin:casework_{model}_changelist"))

    assert response.status_code == 200


def test_a_buckets_due_rule_is_edited_in_the_admin(admin_client):
    bucket = WorkItemBucket.objects.get(key="clinical")
    url = reverse("admin:casework_workitembucket_change", args=[bucket.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name != "id"
    }
    data.update(
        {
            "due_within_hours": 8,
            "reasons-TOTAL_FORMS": 0,
            "reasons-INITIAL_FORMS": 0,
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    bucket.refresh_from_db()
    assert bucket.due_within_hours == 8
    event = AuditEvent.objects.get(action="work_item_bucket.changed")
    assert event.data["changes"] == {"due_within_hours": [24, 8]}


def test_a_work_item_can_be_viewed_but_not_changed_in_the_admin(
    admin_client, sending_organisation
):
    item = open_item(document_in("held", sending_organisation=sending_organisation))
    url = reverse("admin:casework_workitem_change", args=[item.pk])

    page = admin_client.get(url)
    posted = admin_client.post(url, {"reason_code": "X"})

    assert page.status_code == 200
    assert "Save" not in page.content.decode()
    assert posted.status_code == 403
    item.refresh_from_db()
    assert item.reason_code == "DEST_UNKNOWN"


def _form_data(response) -> dict:
    form = response.context["adminform"].form
    return {
        name: value
        for name, value in form.initial.items()
        if value is not None and name != "id"
    }


def test_a_reasons_classification_is_edited_in_the_admin_and_audited(admin_client):

    reason = WorkItemReason.objects.get(code="REJ08")
    url = reverse("admin:casework_workitemreason_change", args=[reason.pk])
    data = _form_data(admin_client.get(url))
    data["suggested_actions"] = '["Phone the practice.", "Reroute it."]'
    data.update(
        {
            "bucket": WorkItemBucket.objects.get(key="routing").pk,
            "action_class": "reroute",
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    classified = work_item_classify(category="rejection", reason_code="REJ08")
    assert (classified.bucket.key, classified.action_class) == ("routing", "reroute")
    event = AuditEvent.objects.get(action="work_item_reason.changed")
    assert event.target_id == str(reason.pk)
    assert event.data["changes"]["action_class"] == ["other_route", "reroute"]
    assert set(event.data["changes"]) == {"bucket", "action_class", "suggested_actions"}
    assert event.actor_kind == "user"


def test_a_reason_added_and_deleted_in_the_admin_is_audited_each_time(admin_client):

    added = admin_client.post(
        reverse("admin:casework_workitemreason_add"),
        {
            "code": "REJ42",
            "bucket": WorkItemBucket.objects.get(key="clinical").pk,
            "title": "A new reason",
            "suggested_actions": '["Read it."]',
            "action_class": "no_further_action",
        },
    )
    reason = WorkItemReason.objects.get(code="REJ42")
    deleted = admin_client.post(
        reverse("admin:casework_workitemreason_delete", args=[reason.pk]),
        {"post": "yes"},
    )

    assert (added.status_code, deleted.status_code) == (302, 302)
    assert not WorkItemReason.objects.filter(code="REJ42").exists()
    assert list(
        AuditEvent.objects.filter(target_type="work_item_reason").values_list(
            "action", flat=True
        )
    ) == ["work_item_reason.created", "work_item_reason.deleted"]


def test_a_due_rule_edited_in_the_bucket_list_is_audited(admin_client):
    buckets = list(WorkItemBucket.objects.order_by("position", "key"))
    data = {
        "form-TOTAL_FORMS": len(buckets),
        "form-INITIAL_FORMS": len(buckets),
        "_save": "Save",
    }
    for index, bucket in enumerate(buckets):
        data[f"form-{index}-id"] = bucket.pk
        data[f"form-{index}-default_team"] = bucket.default_team_id or ""
        data[f"form-{index}-due_within_hours"] = (
            2 if bucket.key == "infrastructure" else bucket.due_within_hours
        )
        data[f"form-{index}-position"] = bucket.position

    response = admin_client.post(
        reverse("admin:casework_workitembucket_changelist"), data
    )

    assert response.status_code == 302
    [event] = AuditEvent.objects.filter(action="work_item_bucket.changed")
    assert event.data["changes"] == {"due_within_hours": [4, 2]}
