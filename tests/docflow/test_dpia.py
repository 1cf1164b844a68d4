"""docs/ig/dpia.md names every field of the models that hold personal data and
every member of the messages docflow sends, and nothing that does not exist.

The outgoing members are read from the messages the builders produce (Connect's
Inbound Document Model and the GP Connect Send Document message for MESH), built
from an outbound value with every field filled, so a new field that reaches a
message shows up here."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import typing
from pathlib import Path

from django.apps import apps
from django.conf import settings

from docflow.models import DocumentType, Gender
from transmissions.channels.connect.adapter import (
    OutboundDocument,
    inbound_document_body,
)
from transmissions.channels.mesh.conformance.send_document import (
    SendDocumentInput,
    send_document_message,
)

DPIA = Path(settings.BASE_DIR) / "docs" / "ig" / "dpia.md"
MODELS = (
    "Document",
    "PayloadVersion",
    "Transmission",
    "WorkItem",
    "PatientTrace",
    "AuditEvent",
    "AccessLog",
    "SendingOrganisation",
    "SourceSystem",
    "MeshQuarantinedAnswer",
    "MeshInboxMessage",
)
OUR_APPS = {
    "audit",
    "docflow",
    "casework",
    "intake",
    "transmissions",
    "operations",
    "governance",
}
SAMPLE = {
    str: "Two words",
    bool: True,
    bytes: b"%PDF-1.4 sample",
    datetime.date: datetime.date(2020, 2, 29),
    int: 2,
}


def filled(cls, **values):
    """An instance of a dataclass with every field set to a non-empty value (an
    optional field as its type; ``values`` where a field takes only some)."""
    hints = typing.get_type_hints(cls)
    sample = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        sample[f.name] = SAMPLE[kind]
    return cls(**{**sample, **values})


def members(value, prefix: str = ""):
    """Leaf paths of a JSON value: ``a.b``, ``a[]`` for lists, and ``entry[Patient]``
    for FHIR entries and resources, named by their resource type."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from members(inner, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for item in value:
            resource = item.get("resource", item) if isinstance(item, dict) else None
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            yield from members(item, f"{prefix}[{kind}]" if kind else f"{prefix}[]")
    else:
        yield prefix


def connect_members() -> set[str]:
    return set(members(inbound_document_body(filled(OutboundDocument))))


def mesh_members() -> set[str]:
    """The members of a GP Connect Send Document message with every input filled
    (a corrected version, so the replaced document is named too)."""
    message = send_document_message(
        filled(
            SendDocumentInput,
            message_id="0b0c7d1e-1111-4222-8333-444455556661",
            document_id="0b0c7d1e-1111-4222-8333-444455556662",
            payload_id="0b0c7d1e-1111-4222-8333-444455556663",
            replaces_document_id="0b0c7d1e-1111-4222-8333-444455556664",
            gender=Gender.FEMALE,
            document_type=DocumentType.CLINIC_LETTER,
            confidential=False,
        )
    )
    return set(members(json.loads(message)))


def documented() -> list[str]:
    """Every inline code span of the DPIA, outside fenced blocks."""
    text = re.sub(r"```.*?```", "", DPIA.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def documented_with(prefix: str) -> set[str]:
    spans = documented()
    return {s[len(prefix) :] for s in spans if s.startswith(prefix) and s != prefix}


def model_fields() -> dict[str, set[str]]:
    found = {}
    for model in apps.get_models():
        if model._meta.app_label in OUR_APPS and model.__name__ in MODELS:
            found[model.__name__] = {f.attname for f in model._meta.concrete_fields}
    assert set(found) == set(MODELS)
    return found


def test_every_field_of_the_personal_data_models_has_a_dpia_row():
    fields = {f"{m}.{f}" for m, names in model_fields().items() for f in names}
    named = {s for s in documented() if s.split(".")[0] in MODELS}
    assert sorted(fields - named) == []


def test_the_dpia_names_no_model_field_that_does_not_exist():
    fields = {f"{m}.{f}" for m, names in model_fields().items() for f in names}
    named = {s for s in documented() if s.split(".")[0] in MODELS and "." in s}
    assert sorted(named - fields) == []


def test_every_member_sent_to_connect_has_a_dpia_row_and_no_row_is_stale():
    sent = connect_members()
    assert "Patient.NhsNumber" in sent
    assert sorted(sent - documented_with("connect:")) == []
    assert sorted(documented_with("connect:") - sent) == []


def test_every_member_sent_over_mesh_has_a_dpia_row_and_no_row_is_stale():
    sent = mesh_members()
    assert "entry[Bundle].resource.entry[Patient].resource.identifier[].value" in sent
    assert sorted(sent - documented_with("mesh:")) == []
    assert sorted(documented_with("mesh:") - sent) == []


def test_a_new_outgoing_field_without_a_dpia_row_is_caught():
    body = inbound_document_body(filled(OutboundDocument))
    body["Patient"]["Address"] = "1 High Street"
    undocumented = set(members(body)) - documented_with("connect:")
    assert undocumented == {"Patient.Address"}


def test_the_dpia_has_a_mermaid_data_flow_diagram_naming_each_recipient():
    text = DPIA.read_text(encoding="utf-8")
    diagram = re.search(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert diagram
    for party in ("Docman Connect", "MESH", "PDS", "GP practice", "Source system"):
        assert party in diagram.group(1)
