"""The operations dashboard in a real browser: charts drawn by the vendored Chart.js
under the site's Content Security Policy, counts and incidents, no patient data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import expect

from docflow.services import document_transition
from operations.services.rollup import hourly_counts_roll_up
from operations.services.watchdog import watchdog_run
from tests.casework.factories import directory
from tests.factories import SendingOrganisationFactory, UserFactory
from tests.operations.conftest import document_at
from tests.samples import VALID_NHS_NUMBER

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("reference_data"),
]

PASSWORD = "correct-horse-battery-staple"


def test_an_operator_sees_throughput_states_rejections_and_open_incidents(
    live_server, page, artefacts
):
    organisation = SendingOrganisationFactory(ods_code="RX1")
    directory("A81001")
    two_hours_ago = timezone.now() - timedelta(hours=2)
    for _ in range(3):
        rejected = document_at("received", at=two_hours_ago, organisation=organisation)
        document_transition(
            document=rejected, transition="mark_rejected", reason="REJ01"
        )
    for _ in range(2):
        document_at("sending", at=two_hours_ago, organisation=organisation)
    now = timezone.now()
    for back in range(3):
        hourly_counts_roll_up(hour=now - timedelta(hours=back))
    watchdog_run()
    user = UserFactory(username="olu", password=PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="view_incident"))

    page.goto(f"{live_server.url}/ops/")
    page.get_by_label("Username").fill("olu")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Operations")
    for chart in ("chart-hourly", "chart-daily", "chart-states"):
        expect(page.locator(f"#{chart}")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#open-incidents")).to_contain_text(
        "2 docman10 document(s) sending for longer than 300 s"
    )
    expect(page.locator("#stuck")).to_contain_text("docman10")
    # Every state is labelled on its axis, and the longest bar's value label is
    # drawn inside the canvas (not cut off at its edge).
    labels = page.evaluate(
        """() => {
          const chart = Chart.getChart("chart-states");
          const values = chart.data.datasets[0].data;
          const longest = values.indexOf(Math.max(...values));
          const bar = chart.getDatasetMeta(0).data[longest];
          chart.ctx.font = "14px Frutiger W01, Arial, sans-serif";
          const width = chart.ctx.measureText(String(values[longest])).width;
          return {
            ticks: chart.scales.y.ticks.length,
            categories: chart.data.labels.length,
            labelEnd: bar.x + 4 + width,
            canvasWidth: chart.width,
            xTitle: chart.options.scales.x.title.text,
          };
        }"""
    )
    assert labels["ticks"] == labels["categories"]
    assert labels["labelEnd"] <= labels["canvasWidth"]
    assert labels["xTitle"] == "Documents"
    page.get_by_text("Throughput per hour as a table").click()
    expect(page.locator("#table-hourly")).to_be_visible()
    expect(page.locator("#table-hourly")).to_contain_text("Rejected")
    expect(page.locator("#rejections")).to_contain_text("REJ01")
    assert VALID_NHS_NUMBER not in page.content()
    page.screenshot(path=artefacts / "dashboard.png", full_page=True)

    content = (artefacts / "dashboard.png").read_bytes()
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 1000
