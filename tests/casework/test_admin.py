"""The admin: reference data is editable, work items are read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from casework.models import WorkItemBucket
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
