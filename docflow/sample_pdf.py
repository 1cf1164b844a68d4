"""Small, valid PDFs built in code, for the demo data, rehearsals and tests.

One writer (``pdf_from_objects``: header, numbered objects, cross-reference table,
trailer) and one page of text on it (``text_pdf``). Not for clinical content: real
letters come from source systems, or from WeasyPrint when docflow converts HTML.
The same arguments always give the same bytes.
"""

from __future__ import annotations

import io


def pdf_from_objects(
    objects: list[bytes],
    *,
    header: bytes = b"%PDF-1.4\n",
    padding: bytes = b"",
    trailer: bytes = b"",
) -> bytes:
    """A PDF of ``objects`` (object 1 the catalogue), with ``padding`` written
    before the cross-reference table and ``trailer`` entries added to the trailer."""
    out = io.BytesIO()
    out.write(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    out.write(padding)
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1)
        + trailer
        + b">>\nstartxref\n%d\n%%%%EOF\n" % xref
    )
    return out.getvalue()


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(
    lines: list[str],
    *,
    pad_to: int = 0,
    page_size: tuple[int, int] = (612, 792),
    font_size: int = 12,
) -> bytes:
    """One page of Helvetica text, a line each; ``pad_to`` pads the file with a
    comment to about that many bytes (for size limits)."""
    width, height = page_size
    commands = ["BT", f"/F1 {font_size} Tf", f"{font_size + 2} TL"]
    commands.append(f"72 {height - 72} Td")
    commands.extend(f"({_escaped(line)}) Tj T*" for line in lines)
    commands.append("ET")
    content = "\n".join(commands).encode("latin-1", errors="replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>" % (width, height),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
        b"/Encoding /WinAnsiEncoding >>",
    ]
    padding = b"%" + b"x" * max(0, pad_to - 600) + b"\n" if pad_to else b""
    return pdf_from_objects(objects, padding=padding)
