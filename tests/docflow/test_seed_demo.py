import io
import json
import stat
from collections import Counter
from pathlib import Path

import nhs_number
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from docflow.demo.documents import demo_nhs_number, letter_pdf
from docflow.models import (
    ApiKey,
    Document,
    DocumentStatus,
    EndpointType,
    Organisation,
    OrganisationStatus,
    SendingOrganisation,
)
from docflow.selectors import document_list
from docflow.uploads.media import sniff_media

pytestmark = pytest.mark.django_db

ROLES = [
    "Clinical admin",
    "IG officer",
    "Integration operator",
    "API client",
    "System admin",
]
SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "transmissions"
    / "channels"
    / "connect"
    / "simulator"
    / "scenarios"
    / "demo.json"
)


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--force", stdout=out, **options)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = [
        SendingOrganisation,
        Organisation,
        Document,
        ApiKey,
        AuditEvent,
        get_user_model(),
    ]
    return {model.__name__: model.objects.count() for model in models}


def test_running_twice_creates_nothing_new_and_prints_the_same_keys(var_dir):
    first = seed()
    counts = row_counts()
    second = seed()
    assert row_counts() == counts
    assert counts["Document"] >= 10
    keys = json.loads((var_dir / "demo-api-keys.json").read_text())
    assert set(keys) == {"RX1", "RY2"}
    for entry in keys.values():
        assert f"Api-Key {entry['key']}" in first
        assert f"Api-Key {entry['key']}" in second


def test_api_keys_file_is_private_and_its_keys_are_valid(var_dir):
    seed()
    path = var_dir / "demo-api-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for ods_code, entry in json.loads(path.read_text()).items():
        api_key = ApiKey.objects.get(prefix=entry["prefix"], revoked=False)
        assert api_key.sending_organisation.ods_code == ods_code
        assert api_key.is_valid(entry["key"])


def test_a_lost_keys_file_revokes_the_old_demo_key_and_makes_a_new_one(var_dir):
    seed()
    (var_dir / "demo-api-keys.json").unlink()
    seed()
    organisation = SendingOrganisation.objects.get(ods_code="RX1")
    assert organisation.api_keys.filter(revoked=False).count() == 1
    assert organisation.api_keys.filter(revoked=True).count() == 1


def test_every_role_has_a_user_and_clinical_admins_see_only_their_trust(var_dir):
    seed()
    for role in ROLES:
        assert Group.objects.get(name=role).user_set.exists(), role
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password("docflow-demo-password")
    clinical = get_user_model().objects.get(username="clinical.admin")
    senders = set(
        document_list(user=clinical).values_list(
            "sending_organisation__ods_code", flat=True
        )
    )
    assert senders == {"RX1"}


def test_destinations_cover_every_endpoint_type_an_inactive_one_and_no_endpoint(
    var_dir,
):
    seed()
    endpoint_types = set(Organisation.objects.values_list("endpoint_type", flat=True))
    assert set(EndpointType.values) | {""} <= endpoint_types
    assert Organisation.objects.exclude(status=OrganisationStatus.ACTIVE).exists()


def test_destinations_match_the_connect_simulator_demo_scenario(var_dir):
    seed()
    scenario = json.loads(SCENARIO.read_text())
    for practice in scenario["organisations"]:
        organisation = Organisation.objects.get(ods_code=practice["ods_code"])
        if practice["behaviour"] == "not_receiving":
            assert organisation.endpoint_type == ""
        else:
            assert organisation.endpoint_type == practice["endpoint_type"]
        assert organisation.is_active == (practice["behaviour"] != "inactive")
    sending = {client["sending_ods_code"] for client in scenario["clients"]}
    assert sending == set(
        SendingOrganisation.objects.values_list("ods_code", flat=True)
    )


def test_documents_go_in_through_intake_and_wait_for_the_engine(var_dir):
    seed()
    states = Counter(Document.objects.values_list("status", flat=True))
    assert states == {DocumentStatus.SUBMITTED: 19, DocumentStatus.CANCELLED: 1}
    cancelled = Document.objects.get(status=DocumentStatus.CANCELLED)
    actions = list(
        AuditEvent.objects.filter(target_id=str(cancelled.public_id))
        .order_by("sequence")
        .values_list("action", "actor_id")
    )
    clinical_admin = get_user_model().objects.get(username="clinical.admin")
    assert actions == [
        ("document.submitted", actions[0][1]),
        ("document.cancel", str(clinical_admin.pk)),
    ]
    verdict = audit_chain_verify()
    assert verdict.ok
    assert verdict.checked == AuditEvent.objects.count()


def test_demo_patients_have_valid_never_issued_nhs_numbers(var_dir):
    seed()
    for number in Document.objects.values_list("nhs_number", flat=True):
        assert number.startswith("999")
        assert nhs_number.is_valid(number)


def test_demo_letters_are_pdfs_and_the_same_lines_give_the_same_bytes():
    letter = letter_pdf(["Dear Doctor,", "Brackets (and back\\slashes) are escaped."])
    assert sniff_media(letter, declared_extension="pdf").media_type == (
        "application/pdf"
    )
    assert letter == letter_pdf(
        ["Dear Doctor,", "Brackets (and back\\slashes) are escaped."]
    )
    assert demo_nhs_number(1) != demo_nhs_number(2)


def test_refuses_to_run_with_debug_off_unless_forced(var_dir, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="admin").exists()
