"""A JSON parser for hostile bodies: UTF-8 only, bounded depth, no lone surrogates.

DRF's JSONParser hands the body to ``json.load``, which recurses once per level of
nesting (3,000 levels raise RecursionError: a 500) and turns ``"\\ud800"`` into a
string that cannot be encoded again (the error page that echoes it fails: another
500). Here the depth is counted before parsing, without recursion, and every
refusal is a ParseError (400 problem+json) whose message never repeats the body.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework import renderers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

# A JSON string (escapes included) or one bracket: brackets inside strings are text.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# A \u escape of a UTF-16 surrogate; only these can yield a lone surrogate, since
# strict UTF-8 decoding refuses encoded ones.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JsonBodyRefused(ParseError):
    """The body is not JSON this API accepts; the message says why, not what."""

    default_code = "parse_error"


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (counted, not parsed).

    A body with no more opening brackets than the limit cannot nest deeper, which
    is every body a source system sends: that costs two ``str.count`` calls.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        piece = match.group(0)
        if piece in "[{":
            depth += 1
            if depth > limit:
                return True
        elif piece in "]}":
            depth -= 1
    return False


def _holds_lone_surrogate(data) -> bool:
    """Whether any key or string in the parsed document is not encodable text."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refuse_constant(name: str):
    raise ValueError("NaN and Infinity are not JSON")


def json_body_parse(raw: bytes, *, max_depth: int):
    """Parse a request body as strict JSON, or raise JsonBodyRefused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonBodyRefused("The request body is not valid UTF-8.") from None
    if json_nesting_exceeds(text, max_depth):
        raise JsonBodyRefused(
            f"The JSON body nests deeper than {max_depth} levels.", code="json_depth"
        )
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        # json's messages give a position, never content; ValueError also covers
        # integers too long to convert.
        position = ""
        if isinstance(exc, json.JSONDecodeError):
            position = f" (line {exc.lineno}, column {exc.colno})"
        raise JsonBodyRefused(
            f"The request body is not valid JSON{position}."
        ) from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(data):
        raise JsonBodyRefused(
            "The JSON body holds an unpaired UTF-16 surrogate escape.",
            code="lone_surrogate",
        )
    return data


class BoundedJSONParser(BaseParser):
    """application/json, parsed by :func:`json_body_parse`."""

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        return json_body_parse(raw, max_depth=settings.DOCFLOW_JSON_MAX_DEPTH)
