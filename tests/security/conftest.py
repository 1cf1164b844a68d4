"""The people, API clients and objects every security test works against: two
sending organisations, each with a rejected document and its open work item, and
one principal per role (plus anonymous and a clinical admin of the other
organisation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from tests.casework.factories import (
    CLINICAL_ADMIN,
    IG_OFFICER,
    INTEGRATION_OPERATOR,
    directory,
    document_in,
    open_item,
    staff,
)
from tests.factories import SendingOrganisationFactory, make_api_key

SYSTEM_ADMIN = "System admin"
API_CLIENT = "API client"

ANONYMOUS = "anonymous"
API = "api_client"
API_OTHER = "api_client_other_org"
CLINICAL = "clinical_admin"
IG = "ig_officer"
OPERATOR = "integration_operator"
SYSADMIN = "system_admin"
OTHER_ORG = "clinical_admin_other_org"
PRINCIPALS = (ANONYMOUS, API, API_OTHER, CLINICAL, IG, OPERATOR, SYSADMIN, OTHER_ORG)
# Who signs in to the admin (is_staff); the others work in /work/ or the API only.
ADMIN_STAFF = (IG, OPERATOR, SYSADMIN)


@dataclass
class Principal:
    name: str
    user: Any = None
    raw_api_key: str | None = None

    def client(self, *, enforce_csrf_checks: bool = False) -> APIClient:
        """A client signed in as this principal: a session, an API key or nothing."""
        client = APIClient(enforce_csrf_checks=enforce_csrf_checks)
        if self.raw_api_key:
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {self.raw_api_key}")
        elif self.user is not None:
            client.force_login(self.user)
        return client


@dataclass
class World:
    organisation: Any
    other_organisation: Any
    document: Any
    other_document: Any
    item: Any
    other_item: Any
    principals: dict[str, Principal] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _service_account(organisation) -> str:
    api_key, raw = make_api_key(sending_organisation=organisation)
    api_key.user.groups.add(Group.objects.get(name=API_CLIENT))
    return raw


@pytest.fixture
def world(db) -> World:
    organisation = SendingOrganisationFactory(ods_code="RX1")
    other = SendingOrganisationFactory(ods_code="RY2")
    directory("A81001", "A81002")
    document = document_in(
        "rejected", sending_organisation=organisation, reason="REJ01"
    )
    other_document = document_in("rejected", sending_organisation=other, reason="REJ01")

    def person(role, organisations, *, is_staff=False, username):
        user = staff(role, organisations=organisations, username=username)
        if is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        return user

    principals = {
        ANONYMOUS: Principal(ANONYMOUS),
        API: Principal(API, raw_api_key=_service_account(organisation)),
        API_OTHER: Principal(API_OTHER, raw_api_key=_service_account(other)),
        CLINICAL: Principal(
            CLINICAL, person(CLINICAL_ADMIN, [organisation], username="ada")
        ),
        IG: Principal(
            IG, person(IG_OFFICER, [organisation], is_staff=True, username="ig")
        ),
        OPERATOR: Principal(
            OPERATOR,
            person(INTEGRATION_OPERATOR, [organisation], is_staff=True, username="olu"),
        ),
        SYSADMIN: Principal(
            SYSADMIN, person(SYSTEM_ADMIN, [], is_staff=True, username="sam")
        ),
        OTHER_ORG: Principal(
            OTHER_ORG, person(CLINICAL_ADMIN, [other], username="bea")
        ),
    }
    return World(
        organisation=organisation,
        other_organisation=other,
        document=document,
        other_document=other_document,
        item=open_item(document),
        other_item=open_item(other_document),
        principals=principals,
    )
