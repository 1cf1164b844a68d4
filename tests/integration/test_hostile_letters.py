"""Issue 13, acceptance point 1: render bombs never hold up good letters.

A real django-q2 cluster (4 workers) on PostgreSQL and a real Connect simulator
process. First 100 valid PDFs alone (the baseline); then four render bombs that
pass intake's checks but pass their profile's render limits, submitted together
with 100 more valid PDFs. Every valid letter reaches Connect; each bomb ends held
once (CONVERSION_LIMIT) with one open work item, soon after its limit; no good
letter waits more than 10 s longer than without the bombs. Other hostile letters
(deeply nested HTML, a huge table, a 30,000 x 30,000 image) are refused at intake.
"""

from __future__ import annotations

import struct
import time
import zlib

import pytest

from audit.models import AuditEvent
from casework.models import WorkItem, WorkItemStatus
from docflow.models import DestinationProfile, Document, DocumentStatus
from docflow.services import IntakeRefused
from tests.factories import submit_document
from tests.samples import pdf_bytes
from transmissions.models import Transmission

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

S = DocumentStatus
GOOD_LETTERS = 100
# The bombs' profile: small limits so the test runs in well under two minutes.
WALL_SECONDS = 3
MAX_PAGES = 20
ON_THEIR_WAY = {S.RECEIVED, S.DELIVERED, S.ACCEPTED}


def html(body: bytes, head: bytes = b"") -> bytes:
    return (
        b"<!DOCTYPE html><html><head><title>Letter</title>"
        + head
        + b"</head><body>"
        + body
        + b"</body></html>"
    )


# Each passes intake (fewer than 500 forced breaks, 10,000 elements, 5,000 cells,
# depth 100) and is still too much to render within the profile's limits.
RENDER_BOMBS = {
    "forced pages": html(b"<p>x</p>" * 450, b"<style>p{break-after:page}</style>"),
    "forced pages inline": html(b'<div style="break-before:page">x</div>' * 450),
    "floats": html(b'<div style="float:left;width:3px;height:3px">x</div>' * 3000),
    "table": html(
        b"<table>" + (b"<tr>" + b"<td>1</td>" * 70 + b"</tr>") * 70 + b"</table>"
    ),
}


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


HOSTILE_AT_INTAKE = {
    "deeply nested": (html(b"<div>" * 3000 + b"x" + b"</div>" * 3000), "html"),
    "huge table": (
        html(
            b"<table>" + (b"<tr>" + b"<td>1</td>" * 200 + b"</tr>") * 200 + b"</table>"
        ),
        "html",
    ),
    "30,000 x 30,000 image": (png_header(30_000, 30_000), "png"),
}
REFUSED_WITH = {
    "deeply nested": "html_too_deep",
    "huge table": "html_too_many_table_cells",
    "30,000 x 30,000 image": "decompression_bomb",
}


def submit(engine, content: bytes, extension: str) -> Document:
    return submit_document(
        sending_organisation=engine.organisation,
        destination_ods_code="A81001",
        content=content,
        declared_extension=extension,
    )


def good_letters(engine, count: int) -> list[Document]:
    return [submit(engine, pdf_bytes(f"Letter {n}"), "pdf") for n in range(count)]


def on_their_way(documents: list[Document]) -> bool:
    states = Document.objects.filter(pk__in=[d.pk for d in documents]).values_list(
        "status", flat=True
    )
    return set(states) <= ON_THEIR_WAY


def waits(documents: list[Document]) -> list[float]:
    """Seconds from each document's submission to its POST at Connect."""
    posted = dict(
        Transmission.objects.filter(document__in=documents).values_list(
            "document_id", "posted_at"
        )
    )
    return [(posted[d.pk] - d.created_at).total_seconds() for d in documents]


def held_with_one_item(bomb: Document) -> bool:
    bomb.refresh_from_db()
    return (
        bomb.status == S.HELD
        and WorkItem.objects.filter(document=bomb, status=WorkItemStatus.OPEN).count()
        == 1
    )


def test_render_bombs_are_held_and_never_delay_good_letters(engine, reference_data):
    DestinationProfile.objects.filter(endpoint_type="docman10").update(
        conversion_wall_seconds=WALL_SECONDS,
        conversion_cpu_seconds=WALL_SECONDS,
        conversion_max_pages=MAX_PAGES,
    )
    engine.start_cluster(workers=4)

    # A warm cluster (its first tasks import everything), then the baseline: good
    # letters alone.
    warm = good_letters(engine, 5)
    engine.wait_for(lambda: on_their_way(warm), timeout=60, message="warm-up")
    baseline = good_letters(engine, GOOD_LETTERS)
    engine.wait_for(
        lambda: on_their_way(baseline), timeout=90, message="the baseline letters"
    )
    baseline_worst = max(waits(baseline))

    # Four bombs, then good letters with them.
    bombs = {
        name: submit(engine, content, "html") for name, content in RENDER_BOMBS.items()
    }
    submitted_at = time.monotonic()
    letters = good_letters(engine, GOOD_LETTERS)
    engine.wait_for(
        lambda: on_their_way(letters) and all(map(held_with_one_item, bombs.values())),
        timeout=90,
        message="every letter on its way and every bomb held",
    )
    settled_after = time.monotonic() - submitted_at

    stats = engine.simulator.stats()
    assert (stats["documents"], stats["distinct_keys"]) == (
        2 * GOOD_LETTERS + 5,
        2 * GOOD_LETTERS + 5,
    )
    worst = max(waits(letters))
    assert worst <= baseline_worst + 10, (worst, baseline_worst)
    timings = {}
    for name, bomb in bombs.items():
        bomb.refresh_from_db()
        assert bomb.status_reason == "CONVERSION_LIMIT", name
        [hold] = AuditEvent.objects.filter(
            target_id=str(bomb.public_id), action="document.hold_before_send"
        )
        assert hold.data["limit"] in {"pages", "wall_time", "cpu_time"}, name
        # The child is stopped at its limit (start-up included), never later.
        assert hold.data["seconds"] <= WALL_SECONDS + 1, (name, hold.data)
        [started] = AuditEvent.objects.filter(
            target_id=str(bomb.public_id), action="document.conversion_started"
        )
        timings[name] = (
            round((started.occurred_at - bomb.created_at).total_seconds(), 1),
            round((hold.occurred_at - bomb.created_at).total_seconds(), 1),
            hold.data["limit"],
            hold.data["seconds"],
        )
        # Held within its limit plus 10 s of its submission: two of the four wait
        # for a slot behind the other two, and still make it.
        assert (hold.occurred_at - started.occurred_at).total_seconds() <= (
            WALL_SECONDS + 10
        ), (name, timings)
        assert (hold.occurred_at - bomb.created_at).total_seconds() <= (
            WALL_SECONDS + 10
        ), (name, timings)
        [item] = WorkItem.objects.filter(document=bomb)
        assert (item.reason_code, item.bucket.key) == ("CONVERSION_LIMIT", "content")
        # Once: nothing converts it again, and nothing reached Connect.
        assert not Transmission.objects.filter(document=bomb).exists()
    assert settled_after < 90
    print("good letters: worst wait", worst, "baseline", baseline_worst)
    print("bombs (started, held after submission; limit; conversion s):", timings)


def test_other_hostile_letters_are_refused_at_intake_and_stall_nothing(engine):
    engine.start_cluster(workers=4)
    for name, (content, extension) in HOSTILE_AT_INTAKE.items():
        with pytest.raises(IntakeRefused) as refused:
            submit(engine, content, extension)
        codes = [code for code, _message in refused.value.errors["content"]]
        assert codes == [REFUSED_WITH[name]], name
    letters = good_letters(engine, 5)

    engine.wait_for(
        lambda: on_their_way(letters), timeout=60, message="the letters after them"
    )
    assert Document.objects.count() == 5
