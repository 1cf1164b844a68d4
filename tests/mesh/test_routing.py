"""Routing: the profile names the channel; the organisation's rules send over MESH
what Connect cannot take; the route is recorded and audited."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from docflow.models import Channel, DocumentStatus, Organisation
from tests.mesh import sandbox as mesh_sandbox
from tests.mesh.conftest import ready_document
from tests.samples import pdf_bytes
from tests.transmissions.conftest import simulator  # noqa: F401 - fixture
from tests.transmissions.engine import connect_to
from transmissions.channels.mesh.routing import RouteReason
from transmissions.channels.registry import document_route
from transmissions.models import Transmission
from transmissions.pipeline.sending import SendOutcome, document_send

S = DocumentStatus


@pytest.fixture
def connect_practice(mesh_db):
    """Practice X26 as a Docman 10 (Connect) destination."""
    Organisation.objects.filter(ods_code=mesh_sandbox.GP_ODS_CODE).update(
        endpoint_type="docman10"
    )
    return mesh_db


def test_connect_destination_stays_on_connect_without_a_rule(connect_practice):
    document = ready_document(connect_practice)

    assert document_route(document=document)[0].name == Channel.CONNECT


def test_payload_too_large_for_connect_goes_over_mesh(connect_practice):
    connect_practice.route_oversize_above_bytes = 10 * 1024
    connect_practice.save(update_fields=["route_oversize_above_bytes"])
    small = ready_document(connect_practice)
    large = ready_document(
        connect_practice, content=pdf_bytes("Scanned letter", pad_to=40 * 1024)
    )

    assert document_route(document=small)[0].name == Channel.CONNECT
    result = document_send(document_id=large.pk)

    assert result.outcome == SendOutcome.POSTED
    transmission = Transmission.objects.get(document=large)
    assert transmission.channel == Channel.MESH
    assert transmission.route_reason == RouteReason.OVERSIZE
    routed = AuditEvent.objects.get(
        target_id=str(large.public_id), action="transmission.routed"
    )
    assert routed.data["reason"] == RouteReason.OVERSIZE
    assert routed.data["transmission"] == str(transmission.public_id)


def test_destination_connect_does_not_serve_goes_over_mesh_by_rule(
    connect_practice,
    simulator,  # noqa: F811 - fixture
    settings,
    monkeypatch,
):
    connect_to(simulator, settings, monkeypatch)
    connect_practice.route_when_not_connect_endpoint = True
    connect_practice.save(update_fields=["route_when_not_connect_endpoint"])
    document = ready_document(connect_practice)

    # The simulator's Connect directory has no X26: DC02 at Connect.
    result = document_send(document_id=document.pk)

    assert result.outcome == SendOutcome.POSTED
    transmission = Transmission.objects.get(document=document)
    assert transmission.channel == Channel.MESH
    assert transmission.route_reason == RouteReason.NOT_CONNECT_ENDPOINT
    document.refresh_from_db()
    assert document.status == S.DELIVERED


def test_destination_connect_does_not_serve_is_held_without_the_rule(
    connect_practice,
    simulator,  # noqa: F811 - fixture
    settings,
    monkeypatch,
):
    connect_to(simulator, settings, monkeypatch)
    document = ready_document(connect_practice)

    result = document_send(document_id=document.pk)

    assert result.outcome == SendOutcome.HELD
    assert result.detail == "DC02"
    assert not Transmission.objects.filter(document=document).exists()


def test_mesh_profile_without_a_mailbox_is_held_for_an_operator(mesh_db):
    mesh_db.is_active = False
    mesh_db.save(update_fields=["is_active"])
    document = ready_document(mesh_db)

    result = document_send(document_id=document.pk)

    assert result.outcome == SendOutcome.HELD
    assert result.detail == "MESH-NOT-CONFIGURED"
    document.refresh_from_db()
    assert document.work_items.get().bucket.key == "infrastructure"
