"""A UK Core DocumentReference a source system would send, built in code."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from tests.samples import VALID_NHS_NUMBER, pdf_bytes

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
FHIR_JSON = "application/fhir+json"


def document_reference(**overrides) -> dict:
    """A valid DocumentReference for RX1's API clients, to A81001; ``overrides``
    replace top-level elements (None removes one)."""
    body = {
        "resourceType": "DocumentReference",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "patient",
                "identifier": [{"system": NHS_SYSTEM, "value": VALID_NHS_NUMBER}],
                "name": [
                    {"use": "official", "family": "Testpatient", "given": ["Alex"]}
                ],
                "gender": "female",
                "birthDate": "1950-03-01",
                "generalPractitioner": [
                    {"identifier": {"system": ODS_SYSTEM, "value": "A81001"}}
                ],
            }
        ],
        "masterIdentifier": {
            "system": "urn:oid:2.16.840.1.113883.2.1.4.1",
            "value": "evt-1",
        },
        "status": "current",
        "docStatus": "final",
        "type": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "373942005",
                    "display": "Discharge summary",
                }
            ]
        },
        "subject": {
            "reference": "#patient",
            "identifier": {"system": NHS_SYSTEM, "value": VALID_NHS_NUMBER},
        },
        "date": "2024-01-15T10:30:00Z",
        "author": [{"display": "Dr A Example"}],
        "custodian": {"identifier": {"system": ODS_SYSTEM, "value": "RX1"}},
        "description": "Discharge summary, ward 7",
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(pdf_bytes()).decode(),
                }
            }
        ],
        "context": {
            "period": {"start": "2024-01-14"},
            "practiceSetting": {"text": "Cardiology"},
        },
    }
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return copy.deepcopy(body)


@pytest.fixture
def post_fhir(api_client):
    def post(body, **headers):
        return api_client.post(
            "/fhir/R4/DocumentReference",
            data=json.dumps(body),
            content_type=FHIR_JSON,
            **headers,
        )

    return post
