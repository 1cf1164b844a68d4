"""Every shape Connect answers with is validated into its type; anything else is
``AnswerUnreadable`` naming the member and what was wrong, never the value."""

from __future__ import annotations

import json

import pytest

from transmissions.channels.connect import adapter
from transmissions.channels.connect.adapter import AnswerUnreadable

JSON = "application/json"
GUID = "0b7c2a44-9c8e-4a57-9d0c-2f1e5d3b6a10"
STATUS = {
    "DocumentGuid": GUID,
    "RecipientOdsCode": "A81001",
    "StatusCode": 4005,
    "StatusDescription": "Rejected",
    "StatusUpdated": "2026-01-02T03:04:05.000006Z",
    "Rejection": {
        "Code": "REJ01",
        "Reason": "Patient is no longer registered at this practice.",
        "RejectedAt": "2026-01-02T03:04:05Z",
    },
    "ResendOf": None,
    "IdempotencyKey": "docflow-key-1",
}
ORGANISATION = {
    "OdsCode": "A81001",
    "Name": "The Surgery",
    "IsActive": True,
    "IsReceivingOrganisation": True,
    "EndpointType": "Docman10",
    "MaxFileSizeBytes": 1024,
}


def body(data) -> bytes:
    return json.dumps(data).encode()


def without(data: dict, member: str) -> dict:
    return {k: v for k, v in data.items() if k != member}


def test_a_status_answer_is_read_into_its_dataclass():
    status = adapter.parse_status(body(STATUS), JSON)

    assert status.guid == GUID
    assert status.status_code == 4005
    assert status.updated_at.utcoffset().total_seconds() == 0
    assert status.rejection.code == "REJ01"
    assert status.rejection.rejected_at.year == 2026
    assert status.resend_of is None
    assert status.idempotency_key == "docflow-key-1"


@pytest.mark.parametrize(
    ("spoiled", "problem"),
    [
        (without(STATUS, "DocumentGuid"), "DocumentGuid: missing"),
        ({**STATUS, "DocumentGuid": 12345}, "DocumentGuid: "),
        ({**STATUS, "DocumentGuid": "not-a-guid"}, "DocumentGuid: uuid_parsing"),
        ({**STATUS, "StatusCode": "4002"}, "StatusCode: literal_error"),
        ({**STATUS, "StatusCode": 4999}, "StatusCode: literal_error"),
        (without(STATUS, "StatusUpdated"), "StatusUpdated: missing"),
        ({**STATUS, "StatusUpdated": "yesterday"}, "StatusUpdated: "),
        ({**STATUS, "StatusUpdated": "2026-01-02T03:04:05"}, "StatusUpdated: "),
        ({**STATUS, "Rejection": "REJ01"}, "Rejection: "),
        ({**STATUS, "ResendOf": 7}, "ResendOf: "),
        ([STATUS], "body: model_type"),
    ],
)
def test_a_status_answer_that_breaks_the_contract_is_unreadable(spoiled, problem):
    with pytest.raises(AnswerUnreadable) as unreadable:
        adapter.parse_status(body(spoiled), JSON)

    assert problem in str(unreadable.value)


def test_an_unreadable_answer_never_quotes_the_values_it_was_given():
    secret = "9990000018 Testpatient"
    spoiled = {**STATUS, "StatusCode": secret, "DocumentGuid": secret}

    with pytest.raises(AnswerUnreadable) as unreadable:
        adapter.parse_status(body(spoiled), JSON)

    assert "9990000018" not in str(unreadable.value)
    assert unreadable.value.__cause__ is None
    assert unreadable.value.__suppress_context__


@pytest.mark.parametrize(
    ("content", "content_type", "problem"),
    [
        (b"Document received", JSON, "json_invalid"),
        (body(STATUS)[:40], JSON, "json_invalid"),
        (b"", JSON, "json_invalid"),
        (body(STATUS), "text/html; charset=utf-8", "content type text/html"),
        (body(STATUS), "", "content type missing"),
    ],
)
def test_a_body_that_is_not_json_is_unreadable(content, content_type, problem):
    with pytest.raises(AnswerUnreadable) as unreadable:
        adapter.parse_status(content, content_type)

    assert problem in str(unreadable.value)


def test_a_json_media_type_with_parameters_or_a_suffix_is_read():
    assert adapter.parse_status(body(STATUS), "application/json; charset=utf-8")
    assert adapter.parse_status(body(STATUS), "application/vnd.connect+json")


def test_a_changes_page_is_read_and_one_bad_change_spoils_the_page():
    page = adapter.parse_changes(
        body({"Changes": [STATUS, STATUS], "NextCursor": "42"}), JSON
    )
    assert [c.guid for c in page.changes] == [GUID, GUID]
    assert page.next_cursor == "42"

    with pytest.raises(AnswerUnreadable, match=r"Changes\.1\.StatusCode"):
        adapter.parse_changes(
            body(
                {"Changes": [STATUS, {**STATUS, "StatusCode": None}], "NextCursor": ""}
            ),
            JSON,
        )
    with pytest.raises(AnswerUnreadable, match="NextCursor: missing"):
        adapter.parse_changes(body({"Changes": []}), JSON)
    with pytest.raises(AnswerUnreadable, match="NextCursor: string_type"):
        adapter.parse_changes(body({"Changes": [], "NextCursor": 42}), JSON)


def test_a_look_up_by_key_finds_one_document_or_none():
    assert adapter.parse_found(body({"Documents": []}), JSON) is None
    assert adapter.parse_found(body({"Documents": [STATUS]}), JSON).guid == GUID

    with pytest.raises(AnswerUnreadable, match="more than one"):
        adapter.parse_found(body({"Documents": [STATUS, STATUS]}), JSON)
    with pytest.raises(AnswerUnreadable, match="Documents: missing"):
        adapter.parse_found(body({}), JSON)
    with pytest.raises(AnswerUnreadable, match=r"Documents\.0\.DocumentGuid: missing"):
        adapter.parse_found(
            body({"Documents": [without(STATUS, "DocumentGuid")]}), JSON
        )


def test_an_organisation_is_read_with_our_endpoint_type_code():
    found = adapter.parse_organisation(body(ORGANISATION), JSON)

    assert (found.ods_code, found.endpoint_type, found.max_file_size_bytes) == (
        "A81001",
        "docman10",
        1024,
    )
    assert (
        adapter.parse_organisation(
            body(without(ORGANISATION, "MaxFileSizeBytes")), JSON
        ).max_file_size_bytes
        is None
    )


@pytest.mark.parametrize(
    ("spoiled", "problem"),
    [
        (without(ORGANISATION, "IsActive"), "IsActive: missing"),
        ({**ORGANISATION, "IsActive": "true"}, "IsActive: bool_type"),
        ({**ORGANISATION, "IsReceivingOrganisation": 1}, "IsReceivingOrganisation"),
        ({**ORGANISATION, "MaxFileSizeBytes": "1 MB"}, "MaxFileSizeBytes: int_type"),
        ({**ORGANISATION, "MaxFileSizeBytes": -1}, "MaxFileSizeBytes: greater_than"),
        (without(ORGANISATION, "OdsCode"), "OdsCode: missing"),
    ],
)
def test_an_organisation_that_breaks_the_contract_is_unreadable(spoiled, problem):
    with pytest.raises(AnswerUnreadable, match=problem):
        adapter.parse_organisation(body(spoiled), JSON)


def test_a_token_answer_is_read_and_a_spoiled_one_is_unreadable():
    token = adapter.parse_token(body({"access_token": "t", "expires_in": 3600}), JSON)
    assert (token.access_token, token.expires_in) == ("t", 3600)

    for spoiled, problem in [
        ({"access_token": "t"}, "expires_in: missing"),
        ({"access_token": "t", "expires_in": "3600"}, "expires_in: int_type"),
        ({"access_token": "", "expires_in": 3600}, "access_token: string_too_short"),
        ({"access_token": "t", "expires_in": 0}, "expires_in: greater_than"),
    ]:
        with pytest.raises(AnswerUnreadable, match=problem):
            adapter.parse_token(body(spoiled), JSON)


def test_validation_codes_are_read_and_an_unreadable_400_gives_none():
    failure = {"ValidationErrors": [{"Code": "DC01.05", "Description": "x"}, {}]}

    assert adapter.parse_validation_codes(body(failure)) == ["DC01.05"]
    assert adapter.parse_validation_codes(b"<html>Bad Request</html>") == []
    assert adapter.parse_validation_codes(body({"ValidationErrors": "DC02"})) == []
