"""Operations test set-up: documents brought into watched states through the real
services at a chosen moment, and a webhook receiver on a loopback port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import time_machine
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from docflow.models import Document
from docflow.services import document_transition
from operations.models import IncidentNotification
from operations.services.notifications import notification_deliver
from tests.casework.factories import directory, document_in
from tests.factories import SendingOrganisationFactory, submit_document
from tests.transmissions.conftest import simulator  # noqa: F401 - a fixture

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_EXTRA = {
    "sending": ["claim_for_sending"],
    "received": ["claim_for_sending", "mark_received"],
    "delivered": ["claim_for_sending", "mark_received", "mark_delivered"],
}


def document_at(
    state: str, *, at: datetime, destination: str = "A81001", organisation=None, **kw
) -> Document:
    """A document that entered ``state`` at ``at``, through the real services."""
    organisation = organisation or SendingOrganisationFactory(ods_code="RX1")
    with time_machine.travel(at, tick=False):
        if state == "submitted":  # intake only: preparation never took it
            return submit_document(
                sending_organisation=organisation,
                destination_ods_code=destination,
                **kw,
            )
        if state in _EXTRA:
            document = document_in(
                "ready",
                sending_organisation=organisation,
                destination=destination,
                **kw,
            )
            for transition in _EXTRA[state]:
                document = document_transition(document=document, transition=transition)
            return document
        return document_in(
            state, sending_organisation=organisation, destination=destination, **kw
        )


@pytest.fixture
def practices(db):
    """A81001 docman10 (reports accepted), A81003 emis_mesh (delivered is final)."""
    docman, mesh = directory("A81001", "A81003")
    mesh.endpoint_type = "emis_mesh"
    mesh.save(update_fields=["endpoint_type"])
    return {"docman10": docman, "emis_mesh": mesh}


def deliver_all() -> list[IncidentNotification]:
    """Deliver every pending alert, as the queued tasks would."""
    return [
        notification_deliver(notification_id=pk)
        for pk in IncidentNotification.objects.values_list("pk", flat=True)
    ]


@dataclass
class Receiver:
    url: str
    bodies: list[dict] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    """A real HTTP endpoint that records what it is sent."""
    receiver = Receiver(url="")

    @Request.application
    def app(request: Request) -> Response:
        receiver.bodies.append(json.loads(request.get_data()))
        return Response("", status=receiver.status)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def connected(simulator, settings, monkeypatch):  # noqa: F811 - the fixture above
    """The real simulator over HTTP, our directory matching its scenario."""
    from django.utils import timezone

    from docflow.models import Organisation
    from tests.transmissions.engine import connect_to, directory_from_scenario

    connect_to(simulator, settings, monkeypatch)
    directory_from_scenario()
    Organisation.objects.update(last_verified_at=timezone.now())
    return simulator


def send_and_track(organisation, destinations: list[str], **overrides) -> list:
    """Send one ready document to each destination and read Connect's answers."""
    from tests.transmissions.engine import ready_document
    from transmissions.channels.connect.tracking.feed import changes_feed_read
    from transmissions.pipeline.sending import document_send

    documents = [
        ready_document(organisation, destination, **overrides)
        for destination in destinations
    ]
    for document in documents:
        document_send(document_id=document.pk)
    changes_feed_read(sending_organisation_id=organisation.pk)
    for document in documents:
        document.refresh_from_db()
    return documents
