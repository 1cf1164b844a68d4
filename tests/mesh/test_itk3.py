"""ITK3 messages and responses, read and written without a network."""

from __future__ import annotations

import json

import pytest

from transmissions.channels.mesh import itk3

MESSAGE_ID = "8c1a7c3e-5f0e-4f4a-9d55-0d3c0f7b7f10"


def _sent() -> bytes:
    """A message as sent, reduced to what a response is matched on."""
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "message",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{MESSAGE_ID}",
                    "resource": {"resourceType": "MessageHeader", "id": MESSAGE_ID},
                }
            ],
        }
    ).encode()


def test_response_names_the_message_it_answers():
    answer = itk3.response_message(
        response_to=itk3.message_header_id(_sent()),
        code=itk3.PATIENT_NOT_KNOWN,
        sender_mailbox="X26ABC2",
    )

    response = itk3.parse_response(answer)

    assert response.response_to == MESSAGE_ID
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
