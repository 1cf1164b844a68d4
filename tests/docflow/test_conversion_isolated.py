"""Conversion in a child process under hard limits: every limit ends it with the
limit named, the page limit stops layout as it passes, and what the fetcher
refused comes back as kind, scheme and host only."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image

from docflow.conversion import PageLimitExceeded, html_to_pdf, inspect_pdf
from docflow.conversion.isolated import (
    ConversionLimits,
    _child_environment,
    conversion_run_isolated,
)
from tests.samples import HTML_LETTER, VALID_NHS_NUMBER

# The render bomb of issue 13: 475 KB, one rule forcing a page per paragraph.
RENDER_BOMB = b"<style>p{break-after:page}</style>" + b"<p>x</p>" * 25_000


def limits(**overrides) -> ConversionLimits:
    values = {
        "wall_seconds": 30,
        "cpu_seconds": 25,
        "memory_bytes": 768 * 2**20,
        "max_pages": 2000,
    }
    return ConversionLimits(**{**values, **overrides})


def forced_pages(count: int) -> bytes:
    return b"<style>p{break-after:page}</style>" + b"<p>x</p>" * count


def test_a_letter_is_converted_in_a_child_process_to_a_pdf_that_opens():
    outcome = conversion_run_isolated(
        HTML_LETTER, media_type="text/html", limits=limits()
    )

    assert outcome.converted
    assert (outcome.limit, outcome.failure, outcome.crashed) == ("", "", "")
    assert outcome.page_count == inspect_pdf(outcome.pdf).page_count == 1
    assert outcome.refused == ()


def test_refused_resources_are_reported_by_kind_scheme_and_host_only():
    html = (
        f'<html><head><link rel="stylesheet" href="https://cdn.example.org/'
        f'{VALID_NHS_NUMBER}/style.css"></head><body>'
        f'<img src="http://images.example.com/scan.png?nhs={VALID_NHS_NUMBER}">'
        f'<img src="http://pt-{VALID_NHS_NUMBER}.example.net/a.png">'
        '<img src="file:///etc/passwd"><p>Letter</p></body></html>'
    ).encode()

    outcome = conversion_run_isolated(html, media_type="text/html", limits=limits())

    assert outcome.converted
    assert {(r.kind, r.scheme, r.host) for r in outcome.refused} == {
        ("stylesheet", "https", "cdn.example.org"),
        ("image", "http", "images.example.com"),
        ("image", "http", "[withheld]"),
        ("image", "file", ""),
    }
    assert VALID_NHS_NUMBER not in repr(outcome.refused_summary())


def test_the_page_limit_stops_layout_as_soon_as_it_is_passed():
    seen = []

    class Pages(logging.Filter):
        def filter(self, record):
            if str(record.msg).startswith("Step 5 - Creating layout - Page"):
                seen.append(int(record.getMessage().split("Page ")[1].split()[0]))
            return True

    progress = logging.getLogger("weasyprint.progress")
    counting = Pages()
    progress.addFilter(counting)
    try:
        with pytest.raises(PageLimitExceeded):
            html_to_pdf(forced_pages(2000), max_pages=20)
    finally:
        progress.removeFilter(counting)

    assert max(seen) == 21  # not 2000: layout stopped at the first page too many


def test_a_render_past_the_page_limit_is_stopped_in_the_child_at_the_next_page():
    outcome = conversion_run_isolated(
        forced_pages(400), media_type="text/html", limits=limits(max_pages=20)
    )

    assert (outcome.converted, outcome.limit) == (False, "pages")
    # Stopped while laying out page 21, not after laying out all 400.
    assert outcome.page_count == 21


def test_the_issue_13_render_bomb_is_killed_at_its_wall_time():
    outcome = conversion_run_isolated(
        RENDER_BOMB, media_type="text/html", limits=limits(wall_seconds=3)
    )

    assert (outcome.converted, outcome.limit) == (False, "wall_time")
    assert outcome.seconds < 3 + 2


def test_a_render_past_its_cpu_time_is_ended_by_the_kernel():
    outcome = conversion_run_isolated(
        RENDER_BOMB, media_type="text/html", limits=limits(cpu_seconds=2)
    )

    assert (outcome.converted, outcome.limit) == (False, "cpu_time")


def test_a_render_past_its_memory_ends_with_the_memory_limit():
    outcome = conversion_run_isolated(
        RENDER_BOMB, media_type="text/html", limits=limits(memory_bytes=160 * 2**20)
    )

    assert (outcome.converted, outcome.limit) == (False, "memory")


def test_an_image_with_more_frames_than_pages_allowed_ends_with_the_pages_limit():
    frames = [Image.new("L", (50, 50), color=shade) for shade in range(0, 250, 50)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])

    outcome = conversion_run_isolated(
        buffer.getvalue(), media_type="image/tiff", limits=limits(max_pages=3)
    )

    assert (outcome.converted, outcome.limit) == (False, "pages")


def test_content_that_cannot_be_converted_fails_with_its_code_and_no_crash():
    outcome = conversion_run_isolated(
        b"\x89PNG\r\n\x1a\nnot really", media_type="image/png", limits=limits()
    )

    assert (outcome.converted, outcome.failure, outcome.crashed) == (
        False,
        "conversion_failed",
        "",
    )
    assert outcome.message == "The image could not be read."


def test_the_child_sees_no_database_url_and_no_secrets(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/docflow")
    monkeypatch.setenv("CONNECT_SECRET_RX1", "demo-secret-RX1")
    monkeypatch.setenv("DOCFLOW_PAYLOAD_KEYS", "k1:abc")

    env = _child_environment()

    assert not {"DATABASE_URL", "CONNECT_SECRET_RX1", "DOCFLOW_PAYLOAD_KEYS"} & set(env)
    assert "PYTHONPATH" in env
