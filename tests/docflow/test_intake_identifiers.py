"""Identifiers only in patient fields; placeholder patients, impossible dates refused.

The rules are the domain's (docflow.validation, applied by document_submit), so every
intake path gets them; the API reports them as field errors that never repeat the
value.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import nhs_number
import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent
from docflow.models import Document
from docflow.services import IntakeRefused, document_submit
from docflow.validation import (
    NON_PATIENT_TEXT_FIELDS,
    contains_nhs_number,
    is_test_nhs_number,
)
from tests.factories import (
    SendingOrganisationFactory,
    make_submission,
    submit_document,
)
from tests.samples import VALID_NHS_NUMBER, intake_json_body

pytestmark = pytest.mark.django_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Valid modulus 11, outside the test range: the shape of a real patient's number.
REAL_SHAPED_NHS_NUMBER = "4010232137"
# NHS Digital's documented example number (in the never-issued 9 range).
EXAMPLE_NHS_NUMBER = "9434765919"
WRITTEN_FORMS = ["9434765919", "943 476 5919", "943-476-5919"]
ALL_ONE_DIGIT = [str(d) * 10 for d in range(10)]


def submit(*, key: str = "event-1", **overrides):
    return document_submit(
        sending_organisation=SendingOrganisationFactory(),
        source_system="epr",
        idempotency_key=key,
        submission=make_submission(**overrides),
        actor=None,
    )


def refusal(*, key: str = "event-1", **overrides) -> IntakeRefused:
    with pytest.raises(IntakeRefused) as caught:
        submit(key=key, **overrides)
    return caught.value


def codes(refused: IntakeRefused, field: str) -> list[str]:
    return [code for code, _message in refused.errors.get(field, [])]


def assert_not_echoed(refused: IntakeRefused, value: str) -> None:
    digits = value.replace(" ", "").replace("-", "")
    for problems in refused.errors.values():
        for _code, message in problems:
            assert value not in message
            assert digits not in message.replace(" ", "").replace("-", "")


def test_the_documented_example_and_its_written_forms_are_nhs_numbers():
    assert all(contains_nhs_number(form) for form in WRITTEN_FORMS)
    assert contains_nhs_number(f"letter about {EXAMPLE_NHS_NUMBER}, seen today")
    # A wrong check digit, a longer run of digits, mixed grouping: not NHS numbers.
    assert not contains_nhs_number("9434765918")
    assert not contains_nhs_number("19434765919")
    assert not contains_nhs_number("943 476-5919")
    assert not contains_nhs_number("REF-2024-0001")
    # Inside an opaque id (a UUID's hex, say) the same digits are not a number.
    assert not contains_nhs_number(f"d{EXAMPLE_NHS_NUMBER}f44d49")
    assert contains_nhs_number(f"evt_{EXAMPLE_NHS_NUMBER}/1")


def test_uuid_hex_keys_whose_digits_pass_modulus_11_are_accepted():
    # Seen in a rehearsal run: uuid4().hex held ten digits that pass modulus 11.
    key = "delayed-acknowledgements-d6571420864f44d49d0ae5359b05a580"
    assert nhs_number.is_valid("6571420864")

    _document, created = submit(key=key, source_reference=key[25:])

    assert created


@pytest.mark.parametrize("written", WRITTEN_FORMS)
@pytest.mark.parametrize("field", NON_PATIENT_TEXT_FIELDS)
def test_nhs_number_in_a_non_patient_field_is_refused_without_echoing_it(
    field, written, filesystem_payload_store
):
    refused = refusal(**{field: written})

    assert "nhs_number_not_allowed" in codes(refused, field)
    assert_not_echoed(refused, written)
    assert Document.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("field", ["description", "notes", "source_reference"])
def test_nhs_number_inside_text_is_refused(field):
    refused = refusal(**{field: f"ref {EXAMPLE_NHS_NUMBER} x"})

    assert codes(refused, field) == ["nhs_number_not_allowed"]


@pytest.mark.parametrize("written", WRITTEN_FORMS)
def test_nhs_number_as_idempotency_key_is_refused(written):
    refused = refusal(key=f"evt-{written}")

    assert codes(refused, "idempotency_key") == ["nhs_number_not_allowed"]
    assert_not_echoed(refused, written)


def test_digits_that_are_not_an_nhs_number_are_ordinary_text():
    document, created = submit(
        key="evt-1700000001",
        source_reference="EPR/2024/000123456789",
        description="Clinic 4 letter, ward 12",
        notes="Call 0113 496 0000",
    )

    assert created
    assert document.source_reference == "EPR/2024/000123456789"


def test_mrn_is_a_patient_field_and_may_hold_digits():
    document, created = submit(mrn="4010232137")

    assert created
    assert document.mrn == "4010232137"


@pytest.mark.parametrize("placeholder", ALL_ONE_DIGIT)
def test_all_one_digit_nhs_numbers_are_refused_even_where_test_numbers_are_allowed(
    placeholder, settings
):
    settings.DOCFLOW_ALLOW_TEST_NHS_NUMBERS = True

    refused = refusal(nhs_number=placeholder)

    # Each passes modulus 11; the library refuses a few as impossible CHI numbers.
    expected = (
        ["nhs_number_placeholder"]
        if nhs_number.is_valid(placeholder)
        else ["nhs_number_checksum"]
    )
    assert codes(refused, "nhs_number") == expected
    assert_not_echoed(refused, placeholder)


def test_the_placeholders_seen_in_testing_are_refused_as_placeholders():
    for placeholder in ("0000000000", "1111111111"):
        assert codes(refusal(nhs_number=placeholder), "nhs_number") == [
            "nhs_number_placeholder"
        ]


def test_test_range_nhs_numbers_are_refused_unless_the_setting_allows_them(settings):
    assert is_test_nhs_number(VALID_NHS_NUMBER)
    assert is_test_nhs_number(EXAMPLE_NHS_NUMBER)
    assert not is_test_nhs_number(REAL_SHAPED_NHS_NUMBER)

    settings.DOCFLOW_ALLOW_TEST_NHS_NUMBERS = False
    refused = refusal(nhs_number=VALID_NHS_NUMBER)
    assert codes(refused, "nhs_number") == ["nhs_number_test_range"]
    _document, created = submit(key="real", nhs_number=REAL_SHAPED_NHS_NUMBER)
    assert created

    settings.DOCFLOW_ALLOW_TEST_NHS_NUMBERS = True
    _document, created = submit(key="test", nhs_number=VALID_NHS_NUMBER)
    assert created


def _allow_test_numbers_under(debug: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_DEBUG", "DOCFLOW_ALLOW_TEST_NHS_NUMBERS")
    }
    env.update(
        DJANGO_DEBUG=debug,
        DJANGO_SETTINGS_MODULE="docflow.settings",
        DJANGO_SECRET_KEY="a-long-production-secret-key-for-this-test",
        DOCFLOW_PAYLOAD_KEYS="kprod:" + base64.urlsafe_b64encode(bytes(32)).decode(),
    )
    script = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.DOCFLOW_ALLOW_TEST_NHS_NUMBERS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_test_numbers_are_allowed_by_default_only_in_debug():
    assert _allow_test_numbers_under("1") == "True True"
    assert _allow_test_numbers_under("0") == "False False"


def test_event_before_the_birth_date_is_refused():
    refused = refusal(
        patient_birth_date=datetime.date(1990, 5, 1),
        event_date=datetime.date(1990, 4, 30),
    )

    assert set(refused.errors) == {"event_date"}
    assert codes(refused, "event_date") == ["event_before_birth"]


def test_event_on_the_birth_date_is_accepted():
    _document, created = submit(
        patient_birth_date=datetime.date(2024, 1, 3),
        event_date=datetime.date(2024, 1, 3),
    )

    assert created


def test_birth_date_before_1900_is_accepted_with_a_warning_on_the_submission_event():
    document, created = submit(patient_birth_date=datetime.date(1880, 6, 1))

    assert created
    event = AuditEvent.objects.get(
        action="document.submitted", target_id=str(document.public_id)
    )
    assert event.data["warnings"] == [
        {
            "field": "patient_birth_date",
            "code": "birth_date_before_1900",
            "detail": "The date of birth is before 1900; check it is right.",
        }
    ]
    assert "1880" not in json.dumps(event.data)


def test_birth_date_before_1880_is_still_refused():
    refused = refusal(patient_birth_date=datetime.date(1879, 12, 31))

    assert codes(refused, "patient_birth_date") == ["too_early"]


def test_plausible_birth_date_records_no_warnings():
    document, _created = submit(patient_birth_date=datetime.date(1900, 1, 1))

    event = AuditEvent.objects.get(
        action="document.submitted", target_id=str(document.public_id)
    )
    assert "warnings" not in event.data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source_reference", "ref\n1"),
        ("source_reference", "ref\x001"),
        ("sender_person", "Dr\tA"),
        ("description", "Letter\r\nBcc: x"),
        ("notes", "stop\x1b[2J"),
    ],
)
def test_control_characters_are_refused_in_one_line_fields_and_escapes_everywhere(
    field, value
):
    refused = refusal(**{field: value})

    assert "control_character" in codes(refused, field)


def test_notes_may_break_lines():
    document, created = submit(notes="First line\nSecond line\tindented")

    assert created
    assert document.notes == "First line\nSecond line\tindented"


# Over the API: the same rules, as field errors of a problem+json 400.


def post(api_client, body: dict, *, key: str = "evt-api"):
    return api_client.post(
        "/api/v1/documents", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


@pytest.mark.parametrize("field", NON_PATIENT_TEXT_FIELDS)
def test_api_refuses_nhs_number_in_each_non_patient_field_without_echoing_it(
    api_client, field
):
    response = post(api_client, intake_json_body(**{field: EXAMPLE_NHS_NUMBER}))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {"field": field, "code": "nhs_number_not_allowed"} in [
        {"field": e["field"], "code": e["code"]} for e in errors
    ]
    assert EXAMPLE_NHS_NUMBER not in response.content.decode()
    assert Document.objects.count() == 0


@pytest.mark.parametrize("written", WRITTEN_FORMS)
def test_api_refuses_nhs_number_as_idempotency_key(api_client, written):
    response = post(api_client, intake_json_body(), key=written)

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error == {
        "field": "Idempotency-Key",
        "code": "nhs_number_not_allowed",
        "detail": error["detail"],
    }
    assert written not in response.content.decode()
    assert Document.objects.count() == 0


def test_api_refuses_placeholder_and_event_before_birth_together(api_client):
    response = post(
        api_client,
        intake_json_body(
            nhs_number="1111111111",
            patient_birth_date="2000-01-02",
            event_date="2000-01-01",
        ),
    )

    assert response.status_code == 400
    fields = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert ("nhs_number", "nhs_number_placeholder") in fields
    assert "1111111111" not in response.content.decode()


def test_api_refuses_event_before_birth(api_client):
    response = post(
        api_client,
        intake_json_body(patient_birth_date="2000-01-02", event_date="2000-01-01"),
    )

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("event_date", "event_before_birth")


def test_api_shows_the_birth_date_warning_in_answer_detail_and_replay(api_client):
    body = intake_json_body(patient_birth_date="1889-02-03")

    created = post(api_client, body, key="evt-old")
    detail = api_client.get(created["Location"])
    replay = post(api_client, body, key="evt-old")

    assert created.status_code == 201, created.content
    warnings = created.json()["warnings"]
    assert [w["code"] for w in warnings] == ["birth_date_before_1900"]
    assert detail.json()["warnings"] == warnings == replay.json()["warnings"]
    assert "1889" not in created.content.decode()


def test_api_answer_has_no_warnings_for_a_plausible_patient(api_client):
    created = post(api_client, intake_json_body())

    assert created.status_code == 201
    assert created.json()["warnings"] == []


@pytest.mark.parametrize("parameter", ["source_reference", "destination"])
def test_list_filters_refuse_an_nhs_number_in_the_query_string(api_client, parameter):
    response = api_client.get("/api/v1/documents", {parameter: EXAMPLE_NHS_NUMBER})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == (parameter, "nhs_number_not_allowed")
    assert EXAMPLE_NHS_NUMBER not in response.content.decode()


def test_content_reason_refuses_an_nhs_number(api_client, api_key):
    api_key[0].user.user_permissions.add(
        Permission.objects.get(codename="view_document_content")
    )
    document = submit_document(sending_organisation=api_key[0].sending_organisation)

    response = api_client.post(
        f"/api/v1/documents/{document.public_id}/content",
        {"reason": f"patient {EXAMPLE_NHS_NUMBER} asked"},
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert EXAMPLE_NHS_NUMBER not in response.content.decode()
