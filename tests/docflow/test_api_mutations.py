"""Mutations of a valid intake request: each answer is a 4xx problem+json that never
repeats what was sent, and nothing is stored.

One field at a time of a body that is otherwise accepted (201) is replaced by
something hostile: a lone surrogate, JSON nested past the limit, control characters,
an NHS number where none belongs, a placeholder patient, a huge string, a value of
the wrong type. The Idempotency-Key header is mutated the same way.
"""

from __future__ import annotations

import json

import pytest

from docflow.models import Document
from docflow.validation import NON_PATIENT_TEXT_FIELDS
from tests.samples import intake_json_body

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
MARK = "zq7mark"
TEXT_FIELDS = (
    "nhs_number",
    "patient_family_name",
    "patient_given_names",
    "mrn",
    "description",
    "folder_name",
    "notes",
    "sender_department",
    "sender_person",
    "destination_ods_code",
    "source_reference",
    "file_name",
    "content",
)
CHOICE_FIELDS = ("document_type", "patient_gender")
DATE_FIELDS = ("patient_birth_date", "event_date")
FLAG_FIELDS = ("urgent", "action_required", "medication_changed", "inpatient")
ALL_FIELDS = TEXT_FIELDS + CHOICE_FIELDS + DATE_FIELDS + FLAG_FIELDS
NHS_NUMBER_FORMS = ("9434765919", "943 476 5919", "943-476-5919")


def _raw_body(field: str, raw_value: str) -> bytes:
    """The valid body with one value replaced by raw JSON text."""
    body = intake_json_body()
    body[field] = "@@SLOT@@"
    return json.dumps(body).replace('"@@SLOT@@"', raw_value).encode()


def _json_body(field: str, value) -> bytes:
    return json.dumps(intake_json_body(**{field: value})).encode()


def _cases():
    """(id, body bytes, Idempotency-Key, what must never come back)."""
    for field in ALL_FIELDS:
        yield f"{field}-lone-surrogate", _raw_body(field, f'"\\udc00{MARK}"'), MARK
        deep = "[" * 100 + f'"{MARK}"' + "]" * 100
        yield f"{field}-deep-json", _raw_body(field, deep), MARK
        yield f"{field}-nul", _json_body(field, f"{MARK}\x00x"), MARK
        yield f"{field}-escape", _json_body(field, f"{MARK}\x1b[2J"), MARK
        if field != "notes":
            yield f"{field}-newline", _json_body(field, f"A{MARK}\n1"), MARK
        yield f"{field}-huge", _json_body(field, MARK * 150_000), MARK * 2
        yield f"{field}-list", _json_body(field, [MARK]), MARK
        yield f"{field}-object", _json_body(field, {MARK: MARK}), MARK
        yield f"{field}-number", _json_body(field, 987654321012), "987654321012"
        yield f"{field}-null", _json_body(field, None), None
    for field in TEXT_FIELDS + DATE_FIELDS + CHOICE_FIELDS:
        yield f"{field}-boolean", _json_body(field, True), None
    for field in NON_PATIENT_TEXT_FIELDS:
        for form in NHS_NUMBER_FORMS:
            yield f"{field}-nhs-number-{form}", _json_body(field, form), form
    for digit in "0123456789":
        placeholder = digit * 10
        yield (
            f"nhs_number-placeholder-{placeholder}",
            (_json_body("nhs_number", placeholder)),
            placeholder,
        )
    yield "not-an-object", b"[]", None
    yield "empty-object", b"{}", None


CASES = list(_cases())
KEY_CASES = [
    *[(f"key-nhs-number-{form}", form, form) for form in NHS_NUMBER_FORMS],
    ("key-inside-nhs-number", "evt-9434765919-1", "9434765919"),
    ("key-newline", f"{MARK}\n1", MARK),
    ("key-nul", f"{MARK}\x001", MARK),
    ("key-too-long", MARK * 20, MARK * 20),
]


def assert_refused(response, never: str | None) -> None:
    assert 400 <= response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    problem = json.loads(response.content)
    assert problem["status"] == response.status_code
    if never is not None:
        # Neither as sent nor in any of the forms a renderer might write it.
        text = response.content.decode()
        assert never not in text
        assert never.replace(" ", "").replace("-", "") not in text.replace("-", "")
        assert json.dumps(never)[1:-1] not in text
    assert Document.objects.count() == 0


def test_the_unmutated_body_is_accepted(api_client):
    response = api_client.generic(
        "POST",
        "/api/v1/documents",
        json.dumps(intake_json_body()).encode(),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="evt-unmutated",
    )

    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "never"),
    [(body, never) for _id, body, never in CASES],
    ids=[c[0] for c in CASES],
)
def test_mutated_field_is_a_4xx_problem_that_never_repeats_the_value(
    api_client, body, never
):
    response = api_client.generic(
        "POST",
        "/api/v1/documents",
        body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="evt-mutation",
    )

    assert_refused(response, never)


@pytest.mark.parametrize(
    ("key", "never"),
    [(key, never) for _id, key, never in KEY_CASES],
    ids=[c[0] for c in KEY_CASES],
)
def test_mutated_idempotency_key_is_a_4xx_problem_that_never_repeats_it(
    api_client, key, never
):
    response = api_client.generic(
        "POST",
        "/api/v1/documents",
        json.dumps(intake_json_body()).encode(),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )

    assert_refused(response, never)
