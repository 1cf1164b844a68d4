"""Hostile values in every filter of the API's document list and the staff pages'
queue and document list: never a server error; the API answers a clear 400
(problem+json) or an empty page, the pages ignore what does not parse."""

from __future__ import annotations

import pytest

from casework.forms import QueueFilterForm
from docflow.api.serializers import DocumentListQuerySerializer
from tests.security.conftest import API, CLINICAL

HOSTILE = [
    "'",
    '"',
    "' OR '1'='1",
    "1; DROP TABLE docflow_document; --",
    "%",
    "_",
    "%%_%",
    "\\",
    "\\x00",
    "\x00",
    "RX1\x00' --",
    "Ünïcødé 名前 🙂",
    "\u202e\u200b",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "A" * 10_000,
    "9" * 400,
    "2024-13-45T99:99:99Z",
    "-1",
]
API_FILTERS = sorted(DocumentListQuerySerializer().fields)
QUEUE_FILTERS = sorted(QueueFilterForm(teams=()).fields)
PROBLEM_JSON = "application/problem+json"


def test_the_filters_under_test_are_the_real_ones():
    assert {"status", "destination", "source_reference", "cursor"} <= set(API_FILTERS)
    assert {"reason", "destination", "team", "after", "bucket"} <= set(QUEUE_FILTERS)


@pytest.mark.parametrize("name", API_FILTERS)
def test_api_list_filters_answer_400_or_an_empty_page(world, name):
    client = world.principals[API].client()
    for value in HOSTILE:
        response = client.get("/api/v1/documents", {name: value})
        assert response.status_code < 500, (name, value[:40])
        if response.status_code == 200:
            ids = [row["id"] for row in response.json()["results"]]
            # A cursor is a position, not a filter: one that decodes to nothing
            # useful starts at the top, still within what the key may see.
            allowed = [str(world.document.public_id)] if name == "cursor" else []
            assert ids in ([], allowed), (name, value[:40])
        else:
            # A cursor that does not decode may also be "not found", like a stale one.
            assert response.status_code in ((400, 404) if name == "cursor" else (400,))
            assert response["Content-Type"].startswith(PROBLEM_JSON)

    # Control: the same filter with the document's own value finds it.
    control = client.get("/api/v1/documents", {"destination": "A81001"})
    assert [row["id"] for row in control.json()["results"]] == [
        str(world.document.public_id)
    ]


@pytest.mark.parametrize("name", QUEUE_FILTERS)
def test_queue_filters_never_fail_and_never_widen_the_queue(world, name):
    client = world.principals[CLINICAL].client()
    for value in HOSTILE:
        for headers in ({}, {"HX-Request": "true", "HX-Target": "queue-results"}):
            response = client.get("/work/", {name: value}, headers=headers)

            assert response.status_code == 200, (name, value[:40])
            body = response.content.decode()
            assert 'id="work-items"' in body
            # Another organisation's item never appears, whatever the filter.
            assert str(world.other_item.public_id) not in body
        form = QueueFilterForm({name: value}, teams=())
        form.is_valid()
        if name in ("reason", "destination") and form.cleaned_data.get(name):
            # Applied (it parsed): nothing matches such a value.
            assert str(world.item.public_id) not in body, (name, value[:40])


def test_the_staff_document_list_ignores_a_hostile_status(world):
    client = world.principals[CLINICAL].client()
    for value in HOSTILE:
        response = client.get("/", {"status": value})

        assert response.status_code == 200, value[:40]
        assert str(world.document.public_id) in response.content.decode()
