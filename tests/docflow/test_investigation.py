"""Failed-payload retrieval: authorised role, reason required, logged; else refused."""

from __future__ import annotations

import datetime
import io
import os
import stat

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import TestCase
from guardian.shortcuts import assign_perm

from audit.models import AccessLog, AuditEvent
from docflow.models import PayloadVersion
from docflow.payloads.investigation import (
    InvestigationRefused,
    document_payload_investigate,
)
from docflow.preparation import document_prepare
from docflow.services import document_transition
from governance.retention import payload_purge_due
from tests.factories import (
    OrganisationFactory,
    SendingOrganisationFactory,
    UserFactory,
    submit_document,
)
from tests.samples import HTML_LETTER, pdf_bytes

pytestmark = pytest.mark.django_db

LETTER = pdf_bytes("Investigation letter body")


@pytest.fixture
def organisation():
    return SendingOrganisationFactory(ods_code="RX9")


@pytest.fixture
def investigator(organisation):
    user = UserFactory(username="ig-officer")
    assign_perm("docflow.view_document_content", user)
    assign_perm("docflow.access_documents", user, organisation)
    return user


def move(document, *transitions):
    for name in transitions:
        document = document_transition(document=document, transition=name)
    return document


@pytest.fixture
def held(organisation):
    return move(
        submit_document(sending_organisation=organisation, content=LETTER),
        "hold_before_send",
    )


def rejected(organisation):
    return move(
        submit_document(sending_organisation=organisation, content=LETTER),
        "mark_prepared",
        "claim_for_sending",
        "mark_received",
        "mark_rejected",
    )


def refused_code(**kwargs) -> str:
    with pytest.raises(InvestigationRefused) as refused:
        document_payload_investigate(**kwargs)
    return refused.value.code


def test_authorised_user_with_a_reason_gets_the_payload_and_it_is_logged(
    investigator, held
):
    payload = document_payload_investigate(
        user=investigator,
        document_id=held.public_id,
        reason="  Practice says the letter was blank  ",
    )

    assert payload.content == LETTER
    assert payload.media_type == "application/pdf"
    [entry] = AccessLog.objects.all()
    assert entry.pk == payload.access_log_id
    assert entry.action == "investigate"
    assert entry.target_id == str(held.public_id)
    assert entry.reason == "Practice says the letter was blank"
    assert entry.actor_id == str(investigator.pk)
    assert AuditEvent.objects.filter(
        action="content.investigate", target_id=str(held.public_id)
    ).exists()


def test_rejected_documents_can_be_investigated_too(investigator, organisation):
    document = rejected(organisation)

    payload = document_payload_investigate(
        user=investigator, document_id=document.public_id, reason="REJ review"
    )

    assert payload.content == LETTER


def test_without_the_content_permission_it_is_refused_and_nothing_is_logged(
    organisation, held
):
    clerk = UserFactory(username="clerk")
    assign_perm("docflow.access_documents", clerk, organisation)

    assert (
        refused_code(user=clerk, document_id=held.public_id, reason="curious")
        == "forbidden"
    )
    assert refused_code(user=None, document_id=held.public_id, reason="x y z") == (
        "forbidden"
    )
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize("reason", ["", "   ", "ok"])
def test_a_reason_is_required(investigator, held, reason):
    assert (
        refused_code(user=investigator, document_id=held.public_id, reason=reason)
        == "reason_required"
    )
    assert not AccessLog.objects.exists()


def test_another_organisations_document_is_not_found(investigator):
    elsewhere = move(submit_document(content=LETTER), "hold_before_send")

    assert (
        refused_code(
            user=investigator, document_id=elsewhere.public_id, reason="checking"
        )
        == "not_found"
    )


def test_documents_that_did_not_fail_are_refused(investigator, organisation):
    fine = submit_document(sending_organisation=organisation, content=LETTER)

    assert (
        refused_code(user=investigator, document_id=fine.public_id, reason="checking")
        == "not_failed"
    )
    assert not AccessLog.objects.exists()


def test_a_purged_payload_is_refused_with_a_clear_error(investigator, organisation):
    start = datetime.datetime(2026, 2, 1, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        document = move(rejected(organisation), "resolve_rejection")
    with (
        time_machine.travel(start + datetime.timedelta(days=365), tick=False),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        assert payload_purge_due().purged == {"finished": 1}

    with pytest.raises(InvestigationRefused) as refused:
        document_payload_investigate(
            user=investigator, document_id=document.public_id, reason="late check"
        )

    assert refused.value.code == "purged"
    assert "purged under the retention policy" in refused.value.message
    assert not AccessLog.objects.exists()


def test_command_writes_an_owner_only_file_and_logs_the_access(
    investigator, held, tmp_path
):
    output = tmp_path / "payload.pdf"
    out = io.StringIO()

    call_command(
        "investigate_payload",
        str(held.public_id),
        "--user",
        "ig-officer",
        "--reason",
        "Practice reports a corrupt file",
        "--output",
        str(output),
        stdout=out,
    )

    assert output.read_bytes() == LETTER
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o600
    version = PayloadVersion.objects.get(document=held)
    assert str(version.public_id) in out.getvalue()
    assert AccessLog.objects.get().reason == "Practice reports a corrupt file"
    with pytest.raises(CommandError, match="exists"):
        call_command(
            "investigate_payload",
            str(held.public_id),
            "--user=ig-officer",
            "--reason=again",
            f"--output={output}",
        )


def test_command_refusal_names_the_reason_and_writes_nothing(held, tmp_path):
    UserFactory(username="nobody")
    output = tmp_path / "payload.pdf"

    with pytest.raises(CommandError, match=r"refused \(forbidden\)"):
        call_command(
            "investigate_payload",
            str(held.public_id),
            "--user=nobody",
            "--reason=just looking",
            f"--output={output}",
        )

    assert not output.exists()
    assert not AccessLog.objects.exists()


def test_a_particular_version_can_be_asked_for(investigator, organisation):
    OrganisationFactory(ods_code="A81001")
    document = submit_document(
        sending_organisation=organisation,
        content=HTML_LETTER,
        declared_extension="html",
    )
    document_prepare(document_id=document.pk)
    document = move(document, "hold_before_send")
    original = PayloadVersion.objects.filter(document=document).order_by("pk").first()

    payload = document_payload_investigate(
        user=investigator,
        document_id=document.public_id,
        reason="what did the source send",
        payload_version_id=original.public_id,
    )
    newest = document_payload_investigate(
        user=investigator, document_id=document.public_id, reason="what went out"
    )

    assert payload.content == HTML_LETTER
    assert payload.stage == "original"
    assert newest.stage == "converted"
    assert newest.content.startswith(b"%PDF-")
    assert AccessLog.objects.count() == 2
