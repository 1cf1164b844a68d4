"""The item page's "What PDS said" section and its button, against the real PDS
simulator: the plain words for each answer, the reroute link, who sees it."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from audit.models import AccessLog
from casework.models import PatientTrace
from tests.casework.factories import document_in, open_item

SECTION = re.compile(r'<section[^>]*id="patient-trace".*?</section>', re.S)


def rejected_item(sending_organisation, nhs_number: str, reason: str = "REJ01"):
    document = document_in(
        "rejected",
        sending_organisation=sending_organisation,
        reason=reason,
        nhs_number=nhs_number,
    )
    return open_item(document)


def section(response) -> str:
    found = SECTION.search(response.content.decode())
    assert found, "no PDS section on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


@pytest.fixture
def traced(client, pds_simulator, sending_organisation, practices, clinician):
    """Post the trace button for a new item of this NHS number; the page after."""

    def run(nhs_number: str, reason: str = "REJ01"):
        item = rejected_item(sending_organisation, nhs_number, reason)
        client.force_login(clinician)
        response = client.post(reverse("casework:item-trace", args=[item.public_id]))
        assert response.status_code == 302
        assert response["Location"] == (
            reverse("casework:item", args=[item.public_id]) + "#patient-trace"
        )
        return item, client.get(response["Location"])

    return run


def test_moved_patient_shows_practice_name_since_date_and_reroute_link(
    traced, practices
):
    practices["active"][1].name = "Hill Surgery"
    practices["active"][1].save(update_fields=["name"])
    item, page = traced("9990000425")
    text = section(page)
    assert "Registered at A81002 Hill Surgery since 3 Nov 2026" in text
    assert "Reroute to A81002" in text
    body = page.content.decode()
    link = re.search(r'id="patient-trace-reroute" href="([^"]+)"', body).group(1)
    assert link.endswith(f"/work/items/{item.public_id}/reroute/?ods_code=A81002")
    assert "PDS answered" in body
    assert item.document.nhs_number not in body
    assert AccessLog.objects.filter(action="pds_trace").count() == 1


def test_patient_at_the_same_practice_offers_no_reroute(
    traced, pds_simulator, practices
):
    pds_simulator.app.patients["9990000425"]["practice"] = "A81001"
    _, page = traced("9990000425")
    text = section(page)
    assert "Registered at A81001" in text
    assert "the practice the letter was sent to" in text
    assert "Reroute to" not in text


def test_practice_not_in_the_directory_says_so(traced, pds_simulator):
    pds_simulator.app.patients["9990000425"]["practice"] = "B99999"
    _, page = traced("9990000425")
    assert "Registered at B99999 (not in docflow's directory)" in section(page)


def test_deceased_patient_says_deceased_and_offers_no_reroute(traced):
    _, page = traced("9990001197", "REJ07")
    text = section(page)
    assert "Deceased on 20 Oct 2026" in text
    assert "Reroute to" not in text


def test_restricted_record_says_no_practice_shown(traced):
    _, page = traced("9990001278", "REJ02")
    text = section(page)
    assert "Restricted record: no practice shown" in text
    assert "Reroute to" not in text


def test_superseded_number_says_so_and_names_the_practice(traced):
    _, page = traced("9990001332", "REJ06")
    text = section(page)
    assert "This NHS number was superseded by another" in text
    assert "Registered at A81001" in text
    assert "9991000135" not in page.content.decode()


def test_unavailable_says_try_again(traced):
    _, page = traced("9990001405")
    assert "PDS unavailable, try again" in section(page)
    assert "Look up on PDS again" in section(page)


@pytest.mark.parametrize(
    ("nhs_number", "words"),
    [
        ("9991001042", "This NHS number was invalidated on PDS"),
        ("9991001697", "PDS holds no patient with this NHS number"),
    ],
)
def test_no_patient_on_pds_says_so(traced, nhs_number, words):
    _, page = traced(nhs_number)
    assert words in section(page)


def test_before_any_trace_the_section_offers_the_button(
    client, pds_simulator, sending_organisation, practices, clinician
):
    item = rejected_item(sending_organisation, "9990000425")
    client.force_login(clinician)
    text = section(client.get(reverse("casework:item", args=[item.public_id])))
    assert "Not looked up yet" in text
    assert "Look up on PDS" in text


def test_operators_see_no_section_and_their_post_is_refused(
    client, pds_simulator, sending_organisation, practices, operator, clinician
):
    item = rejected_item(sending_organisation, "9990000425")
    client.force_login(operator)
    page = client.get(reverse("casework:item", args=[item.public_id]))
    if page.status_code == 200:
        assert 'id="patient-trace"' not in page.content.decode()
    response = client.post(
        reverse("casework:item-trace", args=[item.public_id]), follow=False
    )
    assert response.status_code in (302, 404)
    assert not PatientTrace.objects.exists()


def test_other_reasons_show_no_section(
    client, pds_simulator, sending_organisation, practices, clinician
):
    item = rejected_item(sending_organisation, "9990000425", "REJ03")
    client.force_login(clinician)
    page = client.get(reverse("casework:item", args=[item.public_id]))
    assert page.status_code == 200
    assert 'id="patient-trace"' not in page.content.decode()
    response = client.post(
        reverse("casework:item-trace", args=[item.public_id]), follow=True
    )
    assert "REJ01, REJ02, REJ06 and REJ07" in response.content.decode()
    assert not PatientTrace.objects.exists()


def test_get_is_not_allowed(client, sending_organisation, practices, clinician):
    item = rejected_item(sending_organisation, "9990000425")
    client.force_login(clinician)
    assert (
        client.get(reverse("casework:item-trace", args=[item.public_id])).status_code
        == 405
    )
