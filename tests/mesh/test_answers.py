"""MESH's answers validated into types, the classification of what a failure
means, and ITK3 responses of every unreadable shape: typed errors only."""

from __future__ import annotations

import json

import pytest
import requests
from mesh_client import MeshError

from transmissions.channels.mesh import answers, itk3
from transmissions.channels.mesh.answers import AnswerUnreadable
from transmissions.channels.mesh.client import classify
from transmissions.channels.mesh.errors import (
    MeshAuthFailed,
    MeshMalformedAnswer,
    MeshMalformedRead,
    MeshOutcomeUnknown,
    MeshRefused,
    MeshUnavailable,
)

V2 = "application/vnd.mesh.v2+json"


def body(data) -> bytes:
    return json.dumps(data).encode()


def test_each_answer_is_read_into_its_type():
    assert answers.read_json(
        answers.SendAnswer, body({"message_id": "M1"}), V2
    ).message_id == ("M1")
    assert answers.read_json(
        answers.InboxAnswer, body({"messages": ["A", "B"], "links": {}}), V2
    ).messages == ["A", "B"]
    [v2] = answers.read_json(
        answers.LookupAnswer,
        body({"results": [{"mailbox_id": "X26ABC2", "mailbox_name": "GP"}]}),
        V2,
    ).results
    [v1] = answers.read_json(
        answers.LookupAnswer,
        body({"results": [{"address": "X26ABC2", "description": None}]}),
        "application/json",
    ).results
    assert (v2.mailbox_id, v2.mailbox_name, v1.mailbox_id) == (
        "X26ABC2",
        "GP",
        "X26ABC2",
    )
    tracking = answers.read_json(
        answers.TrackingAnswer,
        body({"message_id": "M1", "status": "Accepted", "status_success": None}),
        V2,
    )
    assert (tracking.message_id, tracking.status) == ("M1", "Accepted")
    by_local_id = answers.read_json(
        answers.TrackingByLocalIdAnswer,
        body({"messageId": "M1", "localId": "L1", "statusSuccess": "SUCCESS"}),
        "application/vnd.mesh.v1+json",
    )
    assert (by_local_id.message_id, by_local_id.local_id) == ("M1", "L1")


@pytest.mark.parametrize(
    ("model", "content", "content_type", "problem"),
    [
        (answers.SendAnswer, body({}), V2, "message_id: missing"),
        (answers.SendAnswer, body({"message_id": 7}), V2, "message_id: string_type"),
        (answers.SendAnswer, body({"message_id": ""}), V2, "string_too_short"),
        (answers.SendAnswer, b"<html>ok</html>", "text/html", "content type text/html"),
        (answers.InboxAnswer, body({"messages": "A,B"}), V2, "messages: list_type"),
        (answers.InboxAnswer, body({"messages": [1]}), V2, "messages.0: string_type"),
        (answers.InboxAnswer, body({}), V2, "messages: missing"),
        (answers.InboxAnswer, b'{"messages": ["A"', V2, "json_invalid"),
        (answers.LookupAnswer, body({"results": [{}]}), V2, "results.0.mailbox_id"),
        (answers.LookupAnswer, body({"results": None}), V2, "results: list_type"),
        (answers.TrackingAnswer, body({"status": "x"}), V2, "message_id: missing"),
        (
            answers.TrackingAnswer,
            body({"message_id": "M", "status_success": "yes"}),
            V2,
            "status_success: bool_type",
        ),
        (
            answers.TrackingByLocalIdAnswer,
            body({"messageId": "M", "statusSuccess": "maybe"}),
            V2,
            "statusSuccess: literal_error",
        ),
        (answers.TrackingByLocalIdAnswer, b"", V2, "json_invalid"),
    ],
)
def test_an_answer_that_breaks_the_contract_is_unreadable(
    model, content, content_type, problem
):
    with pytest.raises(AnswerUnreadable) as unreadable:
        answers.read_json(model, content, content_type)

    assert problem in str(unreadable.value)
    # Never chained to pydantic's error, whose message quotes the values.
    error = unreadable.value
    assert error.__context__ is None or error.__suppress_context__


def test_message_headers_are_read_and_a_report_must_say_what_it_reports():
    data = answers.read_headers(
        {"messagetype": "data", "from": "X26ABC2", "workflowid": "W_ACK"}
    )
    report = answers.read_headers(
        {
            "messagetype": "REPORT",
            "statuscode": "14",
            "linkedmsgid": "M1",
            "statussuccess": "error",
        }
    )

    assert (data.message_type, data.sender, data.succeeded) == ("DATA", "X26ABC2", None)
    assert (report.message_type, report.succeeded) == ("REPORT", False)
    for spoiled, problem in [
        ({}, "messagetype: missing"),
        ({"messagetype": "LETTER"}, "messagetype: literal_error"),
        ({"messagetype": "DATA", "statussuccess": "MAYBE"}, "statussuccess"),
        ({"messagetype": "REPORT", "linkedmsgid": "M1"}, "a report without"),
        ({"messagetype": "REPORT", "statuscode": "14"}, "a report without"),
    ]:
        with pytest.raises(AnswerUnreadable, match=problem):
            answers.read_headers(spoiled)


def _http_error(status: int, payload: bytes = b"") -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response._content = payload
    return requests.HTTPError(f"{status}", response=response)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_auth_failures_whatever_was_raised(status):
    # What mesh_client raises for a refused upload: a bare MeshError, its body
    # saying nothing of credentials; the status comes from the answer itself.
    refused_upload = MeshError("Invalid Authentication Token", {"detail": []})
    unreadable_refusal = requests.exceptions.JSONDecodeError("Expecting value", "", 0)

    assert isinstance(classify(_http_error(status)), MeshAuthFailed)
    assert isinstance(
        classify(refused_upload, upload=True, status=status), MeshAuthFailed
    )
    assert isinstance(
        classify(unreadable_refusal, upload=True, status=status), MeshAuthFailed
    )
    assert isinstance(
        classify(AttributeError(), upload=True, status=status), MeshAuthFailed
    )


def test_a_refused_upload_with_another_status_is_still_refused():
    error = MeshError("Unknown recipient", {"detail": [{"code": "12", "msg": "x"}]})

    refused = classify(error, upload=True, status=417)

    assert isinstance(refused, MeshRefused) and refused.code == "12"


@pytest.mark.parametrize(
    "error",
    [
        KeyError("message_id"),
        TypeError("string indices must be integers"),
        ValueError("invalid literal for int()"),
        requests.exceptions.JSONDecodeError("Expecting value", "", 0),
        AnswerUnreadable("message_id: missing"),
    ],
)
def test_an_unreadable_answer_is_ambiguous_after_an_upload_and_retryable_after_a_read(
    error,
):
    after_upload = classify(error, upload=True, status=202)
    after_read = classify(error, status=200)

    assert isinstance(after_upload, MeshMalformedAnswer)
    assert isinstance(after_upload, MeshOutcomeUnknown) and not after_upload.retry_safe
    assert isinstance(after_read, MeshMalformedRead)
    assert isinstance(after_read, MeshUnavailable) and after_read.retry_safe


@pytest.mark.parametrize(
    "content",
    [
        b"[]",
        b'{"resourceType": "Bundle"}',
        b'{"resourceType": "Bundle", "entry": ["x"]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": []}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": 5}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "MessageHeader", "response": "ok"}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "MessageHeader", "response": {"code": "ok"}}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "OperationOutcome", "issue": [{"details": "x"}]}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "OperationOutcome", "issue": "x"}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": '
        b'{"resourceType": "MessageHeader", "response": {"identifier": "a", '
        b'"code": "ok"}}}]}',
        b"\xff\xfe not utf-8",
    ],
)
def test_every_unreadable_itk3_response_raises_the_typed_error(content):
    with pytest.raises(itk3.Itk3Unreadable):
        itk3.parse_response(content)


def test_an_itk3_response_with_a_wrongly_typed_code_names_the_member_only():
    message = json.loads(
        itk3.response_message(response_to="m-1", code="30001", sender_mailbox="X")
    )
    message["entry"][0]["resource"]["response"]["code"] = "9990000018"

    with pytest.raises(itk3.Itk3Unreadable) as unreadable:
        itk3.parse_response(json.dumps(message).encode())

    assert "response.code" in str(unreadable.value)
    assert "9990000018" not in str(unreadable.value)
