"""Factories with valid defaults. To reach a document state, call the real services."""

from __future__ import annotations

import datetime
import itertools

import factory
from django.contrib.auth import get_user_model

from docflow.models import (
    ApiKey,
    EndpointType,
    Organisation,
    OrganisationStatus,
    SendingOrganisation,
)
from docflow.services import DocumentSubmission, document_submit
from tests.samples import VALID_NHS_NUMBER, pdf_bytes

_counter = itertools.count(1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct-horse-battery-staple")
    is_active = True


class SendingOrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SendingOrganisation
        django_get_or_create = ("ods_code",)

    ods_code = factory.Sequence(lambda n: f"R{n:02d}")
    name = factory.Sequence(lambda n: f"Test Hospitals NHS Trust {n}")
    connect_client_id = factory.LazyAttribute(lambda o: f"client-{o.ods_code}")
    connect_secret_ref = factory.LazyAttribute(lambda o: f"CONNECT_SECRET_{o.ods_code}")


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("ods_code",)

    ods_code = factory.Sequence(lambda n: f"A{81000 + n}")
    name = factory.Sequence(lambda n: f"Example Surgery {n}")
    status = OrganisationStatus.ACTIVE
    endpoint_type = EndpointType.DOCMAN10


def make_api_key(
    *, sending_organisation: SendingOrganisation | None = None, name: str = "EPR"
) -> tuple[ApiKey, str]:
    """An API key (and its service account) for a sending organisation."""
    organisation = sending_organisation or SendingOrganisationFactory()
    user = UserFactory(username=f"svc-{name.lower()}-{next(_counter)}")
    api_key, raw = ApiKey.objects.create_key(
        name=name, sending_organisation=organisation, user=user
    )
    return api_key, raw


def make_submission(**overrides) -> DocumentSubmission:
    values = {
        "nhs_number": VALID_NHS_NUMBER,
        "patient_family_name": "Testpatient",
        "patient_given_names": "Alex",
        "patient_birth_date": datetime.date(1950, 3, 1),
        "document_type": "discharge_summary",
        "description": "Discharge summary",
        "event_date": datetime.date(2024, 1, 15),
        "destination_ods_code": "A81001",
        "content": pdf_bytes(),
        "declared_extension": "pdf",
    }
    values.update(overrides)
    return DocumentSubmission(**values)


def submit_document(
    *,
    sending_organisation: SendingOrganisation | None = None,
    key: str | None = None,
    actor=None,
    **overrides,
):
    """Submit through the real intake service; returns the new document."""
    organisation = sending_organisation or SendingOrganisationFactory()
    document, _ = document_submit(
        sending_organisation=organisation,
        source_system="test",
        idempotency_key=key or f"event-{next(_counter)}",
        submission=make_submission(**overrides),
        actor=actor,
    )
    return document


def consume_prepare_task(document) -> None:
    """Take intake's prepare task for ``document`` off the queue, as the worker that
    prepared it would have (for tests that prepare documents themselves)."""
    from django_q.models import OrmQ

    for row in OrmQ.objects.all():
        if row.task["func"].endswith(".prepare_document") and tuple(
            row.task["args"]
        ) == (document.pk,):
            row.delete()
