"""Intake's cheap checks on HTML and images: the obvious render bombs are refused
before anything is stored, each with its own problem code, as problem+json."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from docflow.models import Document
from docflow.uploads.media import MediaRefused, vet_upload
from tests.samples import HTML_LETTER, intake_json_body

pytestmark = pytest.mark.django_db

# The render bomb of issue 13: 475 KB, one rule forcing a page per paragraph.
RENDER_BOMB = b"<style>p{break-after:page}</style>" + b"<p>x</p>" * 25_000


def page(body: bytes) -> bytes:
    """A document the sniffer takes for HTML (a fragment alone may not be)."""
    return b"<!DOCTYPE html><html><head><title>Letter</title></head><body>" + (
        body + b"</body></html>"
    )


def refusal_code(content: bytes, extension: str = "html") -> str | None:
    try:
        vet_upload(content, declared_extension=extension)
    except MediaRefused as refused:
        return refused.code
    return None


def png_header(width: int, height: int) -> bytes:
    """A PNG that says it is ``width`` x ``height``: its header is all intake reads."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_the_issue_13_render_bomb_is_refused_at_intake_over_the_api(
    api_client, filesystem_payload_store
):
    response = api_client.post(
        "/api/v1/documents",
        intake_json_body(
            file_name="letter.html",
            content=base64.b64encode(RENDER_BOMB).decode(),
        ),
        format="json",
        HTTP_IDEMPOTENCY_KEY="evt-render-bomb",
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("content", "html_too_many_elements")
    assert Document.objects.count() == 0
    assert not any(p.is_file() for p in filesystem_payload_store.rglob("*"))


def test_an_honest_letter_passes_every_html_check():
    assert refusal_code(HTML_LETTER) is None


def test_forced_page_breaks_on_too_many_elements_are_refused():
    html = b"<style>@media print { p.s { break-after: page } }</style>" + (
        b'<p class="s">x</p>' * 600
    )

    assert refusal_code(page(html)) == "html_too_many_page_breaks"


def test_a_few_sections_with_forced_breaks_are_accepted_however_common_the_rule():
    # One rule, but only on the 40 sections: the count is of elements it selects.
    html = (
        b"<style>section { page-break-after: always } p { margin: 0 }</style>"
        + (b"<section>" + b"<p>line</p>" * 20 + b"</section>") * 40
    )

    assert refusal_code(page(html)) is None


def test_inline_forced_breaks_are_counted_too():
    html = b'<div style="color: red; break-before: page">x</div>' * 600

    assert refusal_code(page(html)) == "html_too_many_page_breaks"


def test_deeply_nested_html_is_refused():
    html = b"<div>" * 500 + b"x" + b"</div>" * 500

    assert refusal_code(page(html)) == "html_too_deep"


def test_unclosed_paragraphs_and_list_items_are_not_taken_for_nesting():
    html = b"<ul>" + b"<li><p>item" * 400 + b"</ul>"

    assert refusal_code(page(html)) is None


def test_a_huge_table_is_refused():
    html = b"<table>" + (b"<tr>" + b"<td>1</td>" * 100 + b"</tr>") * 60 + b"</table>"

    assert refusal_code(page(html)) == "html_too_many_table_cells"


def test_html_over_the_size_limit_is_refused(settings):
    settings.DOCFLOW_UPLOAD_HTML_MAX_BYTES = 1000

    assert refusal_code(page(b"<p>" + b"x" * 2000 + b"</p>")) == "html_too_large"


def test_each_bound_is_a_setting(settings):
    settings.DOCFLOW_UPLOAD_HTML_MAX_ELEMENTS = 5

    assert refusal_code(page(b"<p>x</p>" * 6)) == "html_too_many_elements"


def test_a_30000_by_30000_image_is_refused_from_its_header():
    assert refusal_code(png_header(30_000, 30_000), "png") == "decompression_bomb"
