"""CSRF is enforced on every staff form, every admin POST and session use of the API:
a POST without the token is refused (403) and, as a control, the same POST with it
gets past the check."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import reverse

from tests.factories import UserFactory
from tests.security.conftest import ANONYMOUS, API, CLINICAL
from tests.security.test_permission_matrix import (
    MATRIX,
    an_instance,
    concrete_path,
    outcome,
)

STAFF_WRITES = [
    (route, method)
    for route, method in MATRIX
    if method != "GET" and not route.startswith(("api/", "fhir/"))
]
FORM = "application/x-www-form-urlencoded"


def csrf_token(client, path="/accounts/login/") -> str:
    """The CSRF secret a page sets in its cookie (Django accepts it as the token)."""
    client.get(path)
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def test_there_are_staff_forms_to_check():
    routes = {route for route, _ in STAFF_WRITES}
    assert {"accounts/login/", "accounts/logout/", "work/assign/"} <= routes


def write(client, method, path, token=None):
    if method == "PUT":
        headers = {"X-CSRFToken": token} if token else {}
        return client.put(path, "", content_type=FORM, headers=headers)
    return client.post(path, {"csrfmiddlewaretoken": token} if token else {})


@pytest.mark.parametrize(("route", "method"), STAFF_WRITES)
def test_staff_write_without_the_token_is_refused_and_with_it_is_handled(
    world, route, method
):
    principal = ANONYMOUS if route == "accounts/login/" else CLINICAL
    path = concrete_path(route, document=world.document, item=world.item)
    client = world.principals[principal].client(enforce_csrf_checks=True)

    refused = write(client, method, path)
    handled = write(client, method, path, csrf_token(client))

    assert refused.status_code == 403
    assert b"CSRF" in refused.content
    assert outcome(handled) == MATRIX[(route, method)][principal]


def test_the_api_enforces_csrf_on_staff_sessions_but_not_on_api_keys(world):
    session = world.principals[CLINICAL].client(enforce_csrf_checks=True)
    api_key = world.principals[API].client(enforce_csrf_checks=True)

    by_session = session.post("/api/v1/documents", {}, format="json")
    by_key = api_key.post("/api/v1/documents", {}, format="json")

    assert by_session.status_code == 403
    assert "CSRF" in by_session.json()["detail"]
    assert by_key.status_code == 400  # validation: past authentication and CSRF


def test_fhir_intake_enforces_csrf_on_staff_sessions_but_not_on_api_keys(world):
    session = world.principals[CLINICAL].client(enforce_csrf_checks=True)
    api_key = world.principals[API].client(enforce_csrf_checks=True)
    body = '{"resourceType": "DocumentReference"}'
    fhir_json = "application/fhir+json"

    by_session = session.post(
        "/fhir/R4/DocumentReference", body, content_type=fhir_json
    )
    by_key = api_key.post("/fhir/R4/DocumentReference", body, content_type=fhir_json)

    assert by_session.status_code == 403
    assert "CSRF" in json.dumps(by_session.json())
    assert by_key.status_code == 400  # validation: past authentication and CSRF


@pytest.fixture
def superuser_client(world):
    from rest_framework.test import APIClient

    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def admin_posts(models_and_rows):
    for model, row in models_and_rows:
        info = (model._meta.app_label, model._meta.model_name)
        yield reverse("admin:{}_{}_changelist".format(*info))
        yield reverse("admin:{}_{}_add".format(*info))
        yield reverse("admin:{}_{}_change".format(*info), args=[quote(row.pk)])
        yield reverse("admin:{}_{}_delete".format(*info), args=[quote(row.pk)])
    yield reverse("admin:logout")
    yield reverse("admin:password_change")


def test_every_admin_post_needs_the_token(world, superuser_client):
    rows = [(model, an_instance(model)) for model in admin.site._registry]
    paths = list(admin_posts(rows))

    refused = {path: superuser_client.post(path, {}).status_code for path in paths}

    assert len(paths) == 4 * len(admin.site._registry) + 2
    assert {path: code for path, code in refused.items() if code != 403} == {}


def test_admin_sign_in_needs_the_token(db):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)

    response = client.post(reverse("admin:login"), {"username": "x", "password": "y"})

    assert response.status_code == 403


def test_an_admin_post_with_the_token_is_handled(world, superuser_client):
    """The control: the same kind of POST with its token is not refused."""
    token = csrf_token(superuser_client, reverse("admin:index"))

    response = superuser_client.post(
        reverse("admin:casework_team_add"),
        {"name": "CSRF control team", "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 302
