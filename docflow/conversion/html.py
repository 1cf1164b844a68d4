"""HTML to PDF with WeasyPrint: inline content only, a page limit enforced while
laying out, and a record of every external resource that was refused.

Runs wherever it is called; preparation calls it only in the bounded child
process (``docflow.conversion.child``).
"""

from __future__ import annotations

import logging
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from docflow.conversion.errors import (
    MAX_PLAUSIBLE_PAGES,
    ConversionFailed,
    PageLimitExceeded,
)

# WeasyPrint reports each page it lays out on its documented progress logger; the
# message's first argument is the page number (repagination starts again at 1).
_PROGRESS_LOGGER = "weasyprint.progress"
_PAGE_MESSAGE = "Step 5 - Creating layout - Page"
_PAGE_NUMBER = re.compile(r"Page (\d+)")
# Reported on WeasyPrint's main logger when a relative reference cannot be resolved
# (there is no base URL): the resource is lost without reaching the fetcher.
_UNRESOLVED_MESSAGE = "Relative URI reference without a base URI"
# Which part of WeasyPrint asked for a resource says what kind of resource it is.
_KIND_BY_MODULE = (
    ("weasyprint.images", "image"),
    ("weasyprint.svg", "image"),
    ("weasyprint.text.fonts", "font"),
    ("weasyprint.css", "stylesheet"),
)
# Host names are kept to say where content was meant to come from; a long digit
# run in one could be an identifier, so it is not kept.
_LONG_DIGIT_RUN = re.compile(r"[0-9]{6,}")


@dataclass(frozen=True)
class RefusedResource:
    """One external resource the content referred to and conversion did not fetch:
    its kind (image, stylesheet, font, resource, unresolved), and the scheme and
    host of its address, never the rest of it (paths and queries may carry patient
    details)."""

    kind: str
    scheme: str
    host: str

    @classmethod
    def of_url(cls, url: str, *, kind: str) -> RefusedResource:
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        except ValueError:
            scheme, host = "", ""
        if _LONG_DIGIT_RUN.search(host):
            host = "[withheld]"
        return cls(kind=kind, scheme=scheme[:16], host=host[:255])

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "scheme": self.scheme, "host": self.host}


def refused_summary(refused: list[dict]) -> list[dict]:
    """Refused resources counted by (kind, scheme, host), in first-seen order."""
    counted: dict[tuple[str, str, str], int] = {}
    for entry in refused:
        key = (entry.get("kind", ""), entry.get("scheme", ""), entry.get("host", ""))
        counted[key] = counted.get(key, 0) + int(entry.get("count", 1))
    return [
        {"kind": kind, "scheme": scheme, "host": host, "count": count}
        for (kind, scheme, host), count in counted.items()
    ]


def refused_resources_text(refused: list[dict] | None) -> str:
    """What conversion refused to fetch, for a person: kind, scheme and host, with
    how many of each (never a full address: none is ever recorded)."""
    parts = []
    for entry in refused or []:
        where = "://".join(p for p in (entry.get("scheme"), entry.get("host")) if p)
        count = entry.get("count", 1)
        parts.append(
            f"{entry.get('kind', 'resource')} from {where or 'an unresolved address'}"
            + (f" x{count}" if count != 1 else "")
        )
    return "; ".join(parts)


def _requesting_kind() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        for prefix, kind in _KIND_BY_MODULE:
            if module == prefix or module.startswith(prefix + "."):
                return kind
        frame = frame.f_back
    return "resource"


def _refusing_fetcher(refused: list[RefusedResource]):
    from weasyprint.urls import URLFetcher

    class RefusingFetcher(URLFetcher):
        """Inline ``data:`` content only: a letter must never make the server
        fetch a URL or read a file. Every refusal is recorded."""

        def fetch(self, url, headers=None):
            if not url.lower().startswith("data:"):
                refused.append(RefusedResource.of_url(url, kind=_requesting_kind()))
            return super().fetch(url, headers)

    return RefusingFetcher(allowed_protocols={"data"}, allow_redirects=False, timeout=1)


class _PageLimit(logging.Filter):
    def __init__(self, max_pages: int) -> None:
        super().__init__()
        self.max_pages = max_pages

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_PAGE_MESSAGE):
            # A record factory (the NHS-number redaction) may have formatted the
            # message already, leaving no arguments: the number is read from it.
            if record.args:
                page = record.args[0]
            else:
                found = _PAGE_NUMBER.search(record.msg)
                page = int(found.group(1)) if found else 0
            if isinstance(page, int) and page > self.max_pages:
                raise PageLimitExceeded(self.max_pages, reached=page)
        return False  # counted, never printed


class _Unresolved(logging.Filter):
    def __init__(self, refused: list[RefusedResource]) -> None:
        super().__init__()
        self.refused = refused

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_UNRESOLVED_MESSAGE):
            self.refused.append(RefusedResource(kind="unresolved", scheme="", host=""))
        return True


@contextmanager
def _watched(max_pages: int, refused: list[RefusedResource]):
    """Follow WeasyPrint's page-by-page progress (stopping past ``max_pages``) and
    its unresolved references, without printing either."""
    progress = logging.getLogger(_PROGRESS_LOGGER)
    main = logging.getLogger("weasyprint")
    page_limit, unresolved = _PageLimit(max_pages), _Unresolved(refused)
    saved = (progress.level, progress.propagate)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    progress.addFilter(page_limit)
    main.addFilter(unresolved)
    try:
        yield
    finally:
        progress.removeFilter(page_limit)
        main.removeFilter(unresolved)
        progress.setLevel(saved[0])
        progress.propagate = saved[1]


def html_to_pdf(
    html: bytes,
    *,
    max_pages: int = MAX_PLAUSIBLE_PAGES,
    refused: list[RefusedResource] | None = None,
) -> bytes:
    """Render HTML with WeasyPrint, refusing every external resource (each one is
    appended to ``refused``) and stopping as soon as layout passes ``max_pages``."""
    from weasyprint import HTML

    lost: list[RefusedResource] = [] if refused is None else refused
    try:
        with _watched(max_pages, lost):
            document = HTML(
                string=html.decode("utf-8", errors="replace"),
                url_fetcher=_refusing_fetcher(lost),
            ).render()
        if len(document.pages) > max_pages:  # a layout that logged no progress
            raise PageLimitExceeded(max_pages, reached=len(document.pages))
        return document.write_pdf()
    except ConversionFailed:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # WeasyPrint raises many kinds; all mean "cannot convert"
        raise ConversionFailed(
            "conversion_failed", "The HTML could not be rendered."
        ) from exc
