"""Conversion, validation, optimisation and splitting of PDFs, on real bytes."""

from __future__ import annotations

import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from docflow.conversion import (
    ConversionFailed,
    html_to_pdf,
    image_to_pdf,
    inspect_pdf,
    optimise_pdf,
    split_pdf,
)
from tests.samples import HTML_LETTER, pdf_bytes, png_bytes


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text().strip() for page in PdfReader(io.BytesIO(pdf)).pages]


def multi_page_pdf(pages: int) -> bytes:
    html = "".join(
        f'<section style="page-break-after: always"><h1>Page {n}</h1>'
        f"<p>{os.urandom(1200).hex(' ', 4)}</p></section>"
        for n in range(1, pages + 1)
    )
    return html_to_pdf(f"<html><body>{html}</body></html>".encode())


def test_html_becomes_a_pdf_that_opens():
    info = inspect_pdf(html_to_pdf(HTML_LETTER))
    assert info.page_count == 1


def test_html_conversion_fetches_nothing_from_outside():
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    html = (
        f'<html><head><link rel="stylesheet" href="{url}/style.css"></head>'
        f'<body><img src="{url}/tracker.png"><img src="file:///etc/passwd">'
        "<p>Letter</p></body></html>"
    ).encode()
    try:
        pdf = html_to_pdf(html)
    finally:
        server.shutdown()
    assert hits == []
    assert inspect_pdf(pdf).page_count == 1


def test_png_becomes_a_one_page_pdf():
    assert inspect_pdf(image_to_pdf(png_bytes())).page_count == 1


def test_multi_frame_tiff_becomes_one_page_per_frame():
    frames = [Image.new("L", (200, 300), color=shade) for shade in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    assert inspect_pdf(image_to_pdf(buffer.getvalue())).page_count == 3


def test_unreadable_image_fails_with_a_code():
    with pytest.raises(ConversionFailed) as caught:
        image_to_pdf(b"\x89PNG\r\n\x1a\nnot really")
    assert caught.value.code == "conversion_failed"


def test_a_damaged_image_fails_even_after_weasyprint_made_pillow_lenient():
    html_to_pdf(HTML_LETTER)  # importing WeasyPrint sets LOAD_TRUNCATED_IMAGES
    damaged = png_bytes()[:-20] + b"\x00" * 20
    with pytest.raises(ConversionFailed) as caught:
        image_to_pdf(damaged)
    assert caught.value.code == "conversion_failed"


def test_truncated_pdf_is_unreadable():
    with pytest.raises(ConversionFailed) as caught:
        inspect_pdf(pdf_bytes()[:120])
    assert caught.value.code == "unreadable"


def test_encrypted_pdf_is_refused():
    writer = PdfWriter(clone_from=io.BytesIO(pdf_bytes()))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ConversionFailed) as caught:
        inspect_pdf(buffer.getvalue())
    assert caught.value.code == "encrypted"


def test_optimise_downscales_big_images_and_keeps_the_pages():
    noise = Image.frombytes("RGB", (3000, 3000), os.urandom(3000 * 3000 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PDF", resolution=300, quality=95)
    original = buffer.getvalue()
    optimised = optimise_pdf(original)
    assert len(optimised) < len(original) * 0.8
    assert inspect_pdf(optimised).page_count == 1
    [picture] = PdfReader(io.BytesIO(optimised)).pages[0].images
    assert max(picture.image.size) <= 2339


def test_split_keeps_every_page_in_order_and_every_part_under_the_limit():
    pdf = multi_page_pdf(9)
    [single] = split_pdf(multi_page_pdf(1), max_bytes=len(pdf))
    limit = len(single) * 2  # room for about two pages with their shared font
    assert len(pdf) > limit
    parts = split_pdf(pdf, max_bytes=limit)
    assert len(parts) >= 2
    assert all(len(part) <= limit for part in parts)
    texts = [text for part in parts for text in page_texts(part)]
    assert [t.splitlines()[0] for t in texts] == [f"Page {n}" for n in range(1, 10)]


def test_split_refuses_when_one_page_is_over_the_limit():
    with pytest.raises(ConversionFailed) as caught:
        split_pdf(multi_page_pdf(2), max_bytes=500)
    assert caught.value.code == "page_too_large"
