"""ITK3 messages and responses, read and written without a network."""

from __future__ import annotations

import datetime
import json

import pytest

from tests.samples import VALID_NHS_NUMBER, pdf_bytes
from transmissions.channels.mesh import itk3


def _message() -> itk3.OutboundMessage:
    return itk3.OutboundMessage(
        message_id="8c1a7c3e-5f0e-4f4a-9d55-0d3c0f7b7f10",
        sender_mailbox="X26ABC1",
        sender_ods_code="RX1",
        recipient_ods_code="X26",
        document_id="2b8f4f57-0d6e-4c53-8a55-1c3a7e2f9a01",
        document_type="discharge_summary",
        description="Discharge summary",
        event_date=datetime.date(2024, 1, 15),
        nhs_number=VALID_NHS_NUMBER,
        family_name="Testpatient",
        given_names="Alex",
        birth_date=datetime.date(1950, 3, 1),
        media_type="application/pdf",
        content=pdf_bytes(),
    )


def test_document_message_asks_for_both_acknowledgements():
    bundle = json.loads(itk3.document_message(_message()))

    header = bundle["entry"][0]["resource"]
    flags = {
        item["url"]: item.get("valueString")
        for item in header["extension"][0]["extension"]
    }
    assert header["id"] == _message().message_id
    assert flags["InfAckRequested"] == "true"
    assert flags["BusAckRequested"] == "true"
    assert header["event"]["code"] == itk3.SEND_EVENT


def test_response_names_the_message_it_answers():
    content = itk3.document_message(_message())
    answer = itk3.response_message(
        response_to=itk3.message_header_id(content),
        code=itk3.PATIENT_NOT_KNOWN,
        sender_mailbox="X26ABC2",
    )

    response = itk3.parse_response(answer)

    assert response.response_to == _message().message_id
    assert response.code == "30002"
    assert response.response_code == "fatal-error"
    assert response.is_business
    assert not response.is_positive


def test_positive_infrastructure_acknowledgement():
    response = itk3.parse_response(
        itk3.response_message(
            response_to="x", code=itk3.INFRASTRUCTURE_OK, sender_mailbox="X"
        )
    )
    assert response.is_positive
    assert not response.is_business


@pytest.mark.parametrize(
    "content",
    [b"not json", b"{}", b'{"resourceType": "Bundle", "entry": []}'],
)
def test_unreadable_responses_are_refused(content):
    with pytest.raises(itk3.Itk3Unreadable):
        itk3.parse_response(content)


def test_unreadable_original_gets_the_fixed_identifier():
    assert itk3.message_header_id(b"garbage") == itk3.UNREADABLE


def test_outbound_message_repr_hides_the_patient():
    assert VALID_NHS_NUMBER not in repr(_message())
