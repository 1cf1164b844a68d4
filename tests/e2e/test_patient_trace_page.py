"""A clinical admin re-traces a REJ01 patient on the real PDS simulator from the
item page, by keyboard: the answer in plain words, focus on it, the reroute link."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm
from playwright.sync_api import expect

from audit.models import AccessLog
from casework.models import PatientTrace
from tests.casework.factories import CLINICAL_ADMIN, directory, document_in, open_item
from tests.factories import SendingOrganisationFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("reference_data"),
]

PASSWORD = "correct-horse-battery-staple"
MOVED = "9990000425"  # the demo patient who moved to A81002 on 3 Nov 2026


def test_clinical_admin_sees_what_pds_said_and_a_link_to_reroute(
    live_server, page, artefacts, pds_simulator
):
    organisation = SendingOrganisationFactory(ods_code="RX1")
    directory("A81001")
    directory("A81002", name="Hill Surgery")
    item = open_item(
        document_in(
            "rejected",
            sending_organisation=organisation,
            reason="REJ01",
            nhs_number=MOVED,
        )
    )
    user = UserFactory(username="ada", password=PASSWORD)
    user.groups.add(Group.objects.get(name=CLINICAL_ADMIN))
    assign_perm("docflow.access_documents", user, organisation)

    page.goto(f"{live_server.url}/work/items/{item.public_id}/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.goto(f"{live_server.url}/work/items/{item.public_id}/")
    section = page.locator("#patient-trace")
    expect(section).to_contain_text("Not looked up yet")

    button = section.get_by_role("button", name="Look up on PDS")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"#patient-trace$"))
    expect(section).to_contain_text(
        "Registered at A81002 Hill Surgery since 3 Nov 2026"
    )
    expect(section).to_be_focused()
    reroute = section.get_by_role("link", name="Reroute to A81002")
    expect(reroute).to_have_attribute("href", re.compile(r"\?ods_code=A81002$"))
    assert MOVED not in page.content()
    assert MOVED not in page.url
    page.screenshot(path=artefacts / "patient-trace.png", full_page=True)

    trace = PatientTrace.objects.get()
    assert (trace.practice_ods_code, trace.actor_id) == ("A81002", user.pk)
    assert AccessLog.objects.filter(action="pds_trace", actor_label="ada").count() == 1
