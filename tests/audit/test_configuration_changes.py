"""Every configuration change in the admin is an audited call with before/after."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import RequestFactory

from audit.models import AuditEvent
from docflow.directory import organisation_record_lookup
from docflow.models import ApiKey, DestinationProfile, Organisation
from tests.factories import OrganisationFactory, UserFactory, make_api_key
from transmissions.models import MeshMailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def root_request():
    request = RequestFactory().post("/admin/")
    request.user = UserFactory(username="root", is_staff=True, is_superuser=True)
    return request


def admin_save(request, obj, data: dict, *, change: bool = True):
    """What the admin change form does: bind the form, save_model, save_related."""
    model_admin = admin.site._registry[type(obj)]
    form_class = model_admin.get_form(request, obj if change else None, change=change)
    initial = {}
    if change:
        form = form_class(instance=obj)
        for name, field in form.fields.items():
            value = form.initial.get(name, field.initial)
            if hasattr(value, "all"):
                value = [item.pk for item in value.all()]
            elif isinstance(value, list):
                value = [getattr(item, "pk", item) for item in value]
            if value is not None:
                initial[name] = value
    form = form_class(
        data={**initial, **data}, instance=obj if change else None, files={}
    )
    assert form.is_valid(), form.errors
    saved = form.save(commit=False)
    model_admin.save_model(request, saved, form, change)
    model_admin.save_related(request, form, [], change)
    return saved


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-sequence").first()


def test_a_destination_profile_size_limit_edit_records_before_and_after(
    root_request,
):
    profile = DestinationProfile.objects.first()
    before = profile.max_file_size_bytes

    admin_save(root_request, profile, {"max_file_size_bytes": before + 1})

    event = last_event("configuration.changed")
    assert (event.target_type, event.target_id) == (
        "docflow.destinationprofile",
        str(profile.pk),
    )
    assert event.data["changes"] == {
        "max_file_size_bytes": {"before": before, "after": before + 1}
    }
    assert (event.actor_kind, event.actor_label) == ("user", "root")


def test_a_group_added_with_a_permission_records_the_permission(root_request):
    permission = Permission.objects.get(codename="view_document")

    group = admin_save(
        root_request,
        Group(),
        {"name": "Auditors", "permissions": [permission.pk]},
        change=False,
    )

    event = last_event("configuration.added")
    assert event.target_id == str(group.pk)
    assert event.data["changes"]["name"] == {"before": None, "after": "Auditors"}
    assert event.data["changes"]["permissions"] == {
        "before": None,
        "after": [permission.pk],
    }


def test_a_user_granted_a_permission_records_it(root_request):
    user = UserFactory(username="clerk")
    permission = Permission.objects.get(codename="view_document")
    model_admin = admin.site._registry[type(user)]

    model_admin.save_model(root_request, user, None, True)
    user.user_permissions.add(permission)

    class Form:
        instance = user

        def save_m2m(self):
            pass

    model_admin.save_related(root_request, Form(), [], True)

    event = last_event("configuration.changed")
    assert event.data["changes"] == {
        "user_permissions": {"before": [], "after": [permission.pk]}
    }


def test_organisation_deletes_in_bulk_record_each_one(root_request):
    first, second = OrganisationFactory(), OrganisationFactory()
    model_admin = admin.site._registry[Organisation]

    model_admin.delete_queryset(
        root_request, Organisation.objects.filter(pk__in=[first.pk, second.pk])
    )

    deleted = AuditEvent.objects.filter(action="configuration.deleted")
    assert sorted(deleted.values_list("target_id", flat=True)) == sorted(
        [str(first.pk), str(second.pk)]
    )
    assert not Organisation.objects.filter(pk__in=[first.pk, second.pk]).exists()


def test_no_configuration_event_carries_a_secret(root_request):
    api_key, raw = make_api_key(name="EPR")
    mailbox_admin = admin.site._registry[MeshMailbox]
    assert mailbox_admin is not None
    key_admin = admin.site._registry[ApiKey]

    api_key.name = "EPR renamed"
    key_admin.save_model(root_request, api_key, None, True)

    class Form:
        instance = api_key

        def save_m2m(self):
            pass

    key_admin.save_related(root_request, Form(), [], True)
    user = UserFactory(username="clerk2")
    user_admin = admin.site._registry[type(user)]
    user_admin.save_model(root_request, user, None, True)
    user.set_password("a new secret password 123")
    user.save()
    Form.instance = user
    user_admin.save_related(root_request, Form(), [], True)

    events = AuditEvent.objects.filter(action__startswith="configuration.")
    dumped = json.dumps(list(events.values("data", "target_id")))
    assert events.count() == 2
    assert "EPR renamed" in dumped
    assert raw not in dumped and api_key.hashed_key not in dumped
    assert user.password not in dumped
    assert "password" in events.last().data["secret_fields_changed"]
    assert events.first().target_id == api_key.prefix


def test_a_directory_endpoint_type_change_is_audited_with_before_and_after():
    organisation = OrganisationFactory(ods_code="B82001", endpoint_type="docman10")

    organisation_record_lookup(
        ods_code=organisation.ods_code,
        found=True,
        is_active=True,
        is_receiving=True,
        endpoint_type="emis_mesh",
        name="Renamed Surgery",
    )

    event = last_event("organisation.directory_changed")
    assert event.target_id == "B82001"
    assert event.data["changes"] == {
        "endpoint_type": {"before": "docman10", "after": "emis_mesh"},
        "name": {"before": organisation.name, "after": "Renamed Surgery"},
    }
