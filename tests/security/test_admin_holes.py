"""The admin holes the permission-matrix review found, each pinned from both sides:
who must be refused is refused, and who may still can (so a refusal is not an
accident of a broken form). Principals and organisations come from the security
``world``: the operator and the IG officer are granted RX1 only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import assign_perm

from docflow.models import ApiKey
from operations.models import DestinationPause, Incident, IncidentState
from operations.services.incidents import incident_raise
from tests.factories import UserFactory, make_api_key
from tests.security.conftest import API_CLIENT, IG, OPERATOR, SYSADMIN
from transmissions.engine.controls import destination_pause_open, outbound_pause
from transmissions.models import MeshMailbox, OutboundHalt, Transmission


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def changelist_url(model) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


def not_found_in_the_admin(response) -> bool:
    """The admin's answer to an id it cannot find: back to the index, with a
    message that the object does not exist."""
    return response.status_code == 302 and response["Location"] == reverse(
        "admin:index"
    )


def user_form_data(user, **overrides) -> dict:
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    if user.is_staff:
        data["is_staff"] = "on"
    data.update(overrides)
    return data


def a_person(*permissions: str, username: str):
    """A staff user holding exactly these model permissions."""
    user = UserFactory(username=username, is_staff=True, password=None)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


# 1. Only superusers hand out privileges --------------------------------------------


def test_a_system_admin_sees_no_superuser_status_or_permissions_on_the_user_form(
    world,
):
    person = UserFactory(username="pat", password=None)
    client = world.principals[SYSADMIN].client()

    form = client.get(change_url(person)).context["adminform"].form

    assert "is_superuser" not in form.fields
    assert "user_permissions" not in form.fields
    assert "groups" not in form.fields  # shown read-only


def test_a_system_admin_edits_a_user_but_cannot_grant_groups_or_permissions(world):
    person = UserFactory(username="pat", password=None)
    operators = Group.objects.get(name="Integration operator")
    content = Permission.objects.get(codename="change_user")
    client = world.principals[SYSADMIN].client()

    response = client.post(
        change_url(person),
        user_form_data(
            person,
            first_name="Patricia",
            is_staff="on",
            is_superuser="on",
            groups=[operators.pk],
            user_permissions=[content.pk],
        ),
    )

    assert response.status_code == 302
    person.refresh_from_db()
    assert person.first_name == "Patricia"  # the edit itself went through
    assert person.is_staff
    assert not person.is_superuser
    assert list(person.groups.all()) == []
    assert list(person.user_permissions.all()) == []


def test_a_system_admin_cannot_change_a_superusers_account_or_password(world):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = world.principals[SYSADMIN].client()

    page = client.get(change_url(root))
    posted = client.post(change_url(root), user_form_data(root, is_active=""))
    password = client.post(
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"password1": "a-new-Passw0rd!", "password2": "a-new-Passw0rd!"},
    )

    assert page.status_code == 200  # viewing stays possible, read-only
    assert "Save" not in page.content.decode()
    assert posted.status_code == 403
    assert password.status_code == 403
    root.refresh_from_db()
    assert root.is_active
    assert root.check_password("correct-horse-battery-staple")


@pytest.mark.parametrize("model", ["sendingorganisation", "team"])
def test_only_a_superuser_hands_out_access_to_an_organisation_or_a_team(world, model):
    from casework.models import Team
    from docflow.models import SendingOrganisation

    obj = (
        SendingOrganisation if model == "sendingorganisation" else Team
    ).objects.first()
    app = "docflow" if model == "sendingorganisation" else "casework"
    sysadmin = world.principals[SYSADMIN].user
    pages = [
        reverse(f"admin:{app}_{model}_permissions", args=[obj.pk]),
        reverse(
            f"admin:{app}_{model}_permissions_manage_user", args=[obj.pk, sysadmin.pk]
        ),
    ]
    grant = {
        "permissions": ["access_documents" if app == "docflow" else "work_team_items"]
    }
    client = world.principals[SYSADMIN].client()
    root = UserFactory(username="root", is_staff=True, is_superuser=True, password=None)
    superuser = Client()
    superuser.force_login(root)

    assert [client.get(page).status_code for page in pages] == [403, 403]
    assert client.post(pages[1], grant).status_code == 403
    assert sysadmin.get_all_permissions(obj) == set()
    assert [superuser.get(page).status_code for page in pages] == [200, 200]


def test_a_superuser_still_grants_groups_and_superuser_status(world):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    person = UserFactory(username="pat", password=None)
    operators = Group.objects.get(name="Integration operator")
    client = world.principals[SYSADMIN].client()
    client.force_login(root)

    client.post(
        change_url(person),
        user_form_data(person, is_superuser="on", groups=[operators.pk]),
    )

    person.refresh_from_db()
    assert person.is_superuser
    assert list(person.groups.all()) == [operators]


# 2. API keys carry service accounts only -----------------------------------------


def service_account(username: str):
    user = UserFactory(username=username, password=None)
    user.groups.add(Group.objects.get(name=API_CLIENT))
    return user


def key_form_data(world, user) -> dict:
    return {
        "name": "EPR",
        "sending_organisation": world.organisation.pk,
        "user": user.pk,
    }


def test_an_operator_binds_a_new_api_key_to_a_service_account(world):
    account = service_account("svc-new")
    client = world.principals[OPERATOR].client()

    response = client.post(
        reverse("admin:docflow_apikey_add"), key_form_data(world, account)
    )

    assert response.status_code == 302
    assert ApiKey.objects.filter(user=account, name="EPR").count() == 1


def test_the_api_key_form_offers_only_service_accounts(world):
    account = service_account("svc-new")
    UserFactory(username="pat", password=None)
    client = world.principals[OPERATOR].client()

    form = client.get(reverse("admin:docflow_apikey_add")).context["adminform"].form

    offered = set(form.fields["user"].queryset.values_list("username", flat=True))
    # The world's own two service accounts and the new one; no person.
    assert account.username in offered
    assert offered == set(ApiKey.objects.values_list("user__username", flat=True)) | {
        account.username
    }


@pytest.mark.parametrize(
    "kind", ["superuser", "staff", "person", "inactive", "api client and a person"]
)
def test_an_api_key_cannot_be_bound_to_anyone_but_a_service_account(world, kind):
    if kind == "superuser":
        user = UserFactory(username="root", is_superuser=True, password=None)
    elif kind == "staff":
        user = UserFactory(username="staffer", is_staff=True, password=None)
    elif kind == "person":
        user = world.principals[OPERATOR].user
    elif kind == "inactive":
        user = service_account("svc-old")
        user.is_active = False
        user.save(update_fields=["is_active"])
    else:
        user = service_account("svc-and-clinical")
        user.groups.add(Group.objects.get(name="Clinical admin"))
    client = world.principals[OPERATOR].client()

    response = client.post(
        reverse("admin:docflow_apikey_add"), key_form_data(world, user)
    )

    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not ApiKey.objects.filter(user=user).exists()


def test_an_operator_cannot_make_a_key_for_an_organisation_not_granted(world):
    account = service_account("svc-new")
    client = world.principals[OPERATOR].client()
    data = key_form_data(world, account)
    data["sending_organisation"] = world.other_organisation.pk

    response = client.post(reverse("admin:docflow_apikey_add"), data)

    assert "sending_organisation" in response.context["adminform"].form.errors
    assert not ApiKey.objects.filter(user=account).exists()


# 3. Admin actions need the permission to act, not only to view ----------------------


def run_action(client, model, action: str, rows) -> None:
    client.post(
        changelist_url(model),
        {"action": action, "_selected_action": [row.pk for row in rows]},
    )


def an_incident() -> Incident:
    return incident_raise(
        kind="stuck_documents",
        scope="ready:docman10",
        summary="stuck",
        severity="major",
    ).incident


def act_on_incident(client, incident, action: str):
    """Acknowledge or resolve from the incident's own admin page (with a reason)."""
    return client.post(
        reverse("admin:operations_incident_change", args=[incident.pk]),
        {
            "incident_action": action,
            "acknowledge-note": "On it",
            "resolve-resolution": "Cleared",
        },
    )


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_viewing_incidents_is_not_enough_to_work_them(world, action):
    incident = an_incident()

    response = act_on_incident(world.principals[SYSADMIN].client(), incident, action)

    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.state == IncidentState.OPEN


@pytest.mark.parametrize(
    ("action", "state"),
    [("acknowledge", IncidentState.ACKNOWLEDGED), ("resolve", IncidentState.RESOLVED)],
)
def test_an_operator_works_an_incident_from_its_admin_page(world, action, state):
    incident = an_incident()

    response = act_on_incident(world.principals[OPERATOR].client(), incident, action)

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.state == state


def test_viewing_destination_pauses_is_not_enough_to_lift_one(world):
    pause = destination_pause_open(destination_ods_code="A81012", reason="no acks")

    run_action(world.principals[SYSADMIN].client(), DestinationPause, "lift", [pause])
    pause.refresh_from_db()
    assert pause.closed_at is None

    run_action(world.principals[OPERATOR].client(), DestinationPause, "lift", [pause])
    pause.refresh_from_db()
    assert pause.closed_at is not None


def test_changing_organisations_is_not_enough_to_pause_or_resume_their_sending(world):
    """The System admin edits sending organisations but holds no halt rights."""
    organisation = world.organisation
    model = type(organisation)
    sysadmin = world.principals[SYSADMIN].client()
    operator = world.principals[OPERATOR].client()

    def open_halts():
        return OutboundHalt.objects.filter(
            sending_organisation=organisation, closed_at__isnull=True
        ).count()

    run_action(sysadmin, model, "pause_outbound", [organisation])
    assert open_halts() == 0
    run_action(operator, model, "pause_outbound", [organisation])
    assert open_halts() == 1
    run_action(sysadmin, model, "resume_outbound", [organisation])
    assert open_halts() == 1
    run_action(operator, model, "resume_outbound", [organisation])
    assert open_halts() == 0


def test_viewing_halts_is_not_enough_to_lift_one(world):
    halt = outbound_pause(
        reason="test", actor=None, sending_organisation=world.organisation
    )
    viewer = world.principals[SYSADMIN].client()
    viewer.force_login(
        a_person("transmissions.view_outboundhalt", username="halt-viewer")
    )

    run_action(viewer, OutboundHalt, "lift_selected", [halt])
    halt.refresh_from_db()
    assert halt.closed_at is None

    run_action(
        world.principals[OPERATOR].client(), OutboundHalt, "lift_selected", [halt]
    )
    halt.refresh_from_db()
    assert halt.closed_at is not None


# 4. The admin shows only the granted organisations' rows ---------------------------


def a_transmission(document) -> Transmission:
    return Transmission.objects.create(
        document=document,
        payload_version=document.payload_versions.first(),
        sending_organisation=document.sending_organisation,
        channel=Transmission._meta.get_field("channel").choices[0][0],
        destination_ods_code=document.destination_ods_code,
        idempotency_key=f"test-{document.pk}",
    )


@pytest.mark.parametrize("principal", [OPERATOR, IG])
def test_another_organisations_rows_do_not_exist_in_the_admin(world, principal):
    client = world.principals[principal].client()
    others = [
        world.other_document,
        world.other_item,
        a_transmission(world.other_document),
    ]
    own = [world.document, world.item, a_transmission(world.document)]

    for obj in others:
        assert not_found_in_the_admin(client.get(change_url(obj))), obj
    for obj in own:
        assert client.get(change_url(obj)).status_code == 200, obj


@pytest.mark.parametrize("principal", [OPERATOR, IG])
def test_admin_lists_show_only_the_granted_organisations_rows(world, principal):
    client = world.principals[principal].client()
    a_transmission(world.document)
    a_transmission(world.other_document)

    for model in (type(world.document), type(world.item), Transmission):
        listed = client.get(changelist_url(model)).context["cl"].result_list
        organisations = {row.sending_organisation_id for row in listed}
        assert organisations == {world.organisation.pk}, model


def test_another_organisations_document_history_is_not_found(world):
    client = world.principals[IG].client()
    document = world.other_document
    version = document.history.order_by("history_id").first()
    own_version = world.document.history.order_by("history_id").first()

    history = client.get(reverse("admin:docflow_document_history", args=[document.pk]))
    one_version = client.get(
        reverse(
            "admin:docflow_document_simple_history",
            args=[document.pk, version.history_id],
        )
    )
    own = client.get(
        reverse(
            "admin:docflow_document_simple_history",
            args=[world.document.pk, own_version.history_id],
        )
    )

    assert history.status_code == 404
    assert one_version.status_code == 404
    assert own.status_code == 200


def test_another_organisations_api_key_does_not_exist_in_the_admin(world):
    client = world.principals[OPERATOR].client()
    own_key = ApiKey.objects.get(sending_organisation=world.organisation)
    other_key, _ = make_api_key(sending_organisation=world.other_organisation)

    assert not_found_in_the_admin(client.get(change_url(other_key)))
    assert client.get(change_url(own_key)).status_code == 200


def test_another_organisations_mesh_mailbox_does_not_exist_in_the_admin(world):
    person = a_person("transmissions.view_meshmailbox", username="mesh-viewer")
    assign_perm("docflow.access_documents", person, world.organisation)
    client = world.principals[OPERATOR].client()
    client.force_login(person)
    own, other = (
        MeshMailbox.objects.create(
            sending_organisation=organisation,
            mailbox_id=f"{organisation.ods_code}OT001",
            password_ref="MESH_PASSWORD",
            shared_key_ref="MESH_SHARED_KEY",
        )
        for organisation in (world.organisation, world.other_organisation)
    )

    assert not_found_in_the_admin(client.get(change_url(other)))
    assert client.get(change_url(own)).status_code == 200


def test_a_superuser_sees_every_organisations_rows_in_the_admin(world):
    client = world.principals[OPERATOR].client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    for obj in (world.other_document, world.other_item):
        assert client.get(change_url(obj)).status_code == 200
