"""A DocumentReference goes the whole way: intake over HTTP, then the engine's own
services send it to the real Connect simulator, and GET follows its state."""

from __future__ import annotations

import pytest

from docflow.api.fhir.resources import LIFECYCLE_EXTENSION
from docflow.models import Document, DocumentStatus
from tests.factories import consume_prepare_task
from tests.fhir.conftest import document_reference
from tests.transmissions.conftest import simulator  # noqa: F401 (fixture)
from tests.transmissions.engine import connect_to, directory_from_scenario
from transmissions.channels.connect.tracking.feed import changes_feed_read
from transmissions.models import Transmission
from transmissions.pipeline.sending import document_send
from transmissions.pipeline.sweep import document_prepare_for_sending

pytestmark = pytest.mark.django_db

S = DocumentStatus


def lifecycle_state(client, public_id) -> tuple[str, str]:
    body = client.get(f"/fhir/R4/DocumentReference/{public_id}").json()
    state = next(
        e["valueCode"] for e in body["extension"] if e["url"] == LIFECYCLE_EXTENSION
    )
    return state, body["status"]


def send(document: Document, sending_organisation) -> Document:
    """What the workers do: prepare, send, read Connect's changes feed."""
    prepared = document_prepare_for_sending(document_id=document.pk)
    consume_prepare_task(document)
    assert prepared.document.status == S.READY, prepared.document.status
    document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=sending_organisation.pk)
    document.refresh_from_db()
    return document


def test_a_document_reference_is_sent_to_connect_and_its_state_read_back(
    simulator,  # noqa: F811
    settings,
    monkeypatch,
    post_fhir,
    api_client,
    sending_organisation,
):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    created = post_fhir(document_reference())
    assert created.status_code == 201, created.content
    document = Document.objects.get(public_id=created.json()["id"])

    document = send(document, sending_organisation)

    assert document.status in (S.RECEIVED, S.DELIVERED, S.ACCEPTED)
    transmission = Transmission.objects.get(document=document)
    assert transmission.external_id  # Connect's GUID
    assert lifecycle_state(api_client, document.public_id) == (
        document.status,
        "current",
    )


def test_a_corrected_version_of_a_sent_document_is_sent_too(
    simulator,  # noqa: F811
    settings,
    monkeypatch,
    post_fhir,
    api_client,
    sending_organisation,
):
    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    original = Document.objects.get(
        public_id=post_fhir(document_reference()).json()["id"]
    )
    original = send(original, sending_organisation)
    correction = document_reference(
        masterIdentifier={"value": "evt-1-v2"},
        docStatus="amended",
        relatesTo=[
            {
                "code": "replaces",
                "target": {"reference": f"DocumentReference/{original.public_id}"},
            }
        ],
    )

    corrected = Document.objects.get(public_id=post_fhir(correction).json()["id"])
    corrected = send(corrected, sending_organisation)

    assert corrected.replaces == original
    assert corrected.status in (S.RECEIVED, S.DELIVERED, S.ACCEPTED)
    assert Transmission.objects.filter(document=corrected).count() == 1
    # The original went before the correction came: it stays as Connect has it.
    state, status = lifecycle_state(api_client, original.public_id)
    assert state == Document.objects.get(pk=original.pk).status != S.CANCELLED
    assert status == "superseded"
