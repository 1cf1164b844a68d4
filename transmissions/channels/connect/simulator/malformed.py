"""Answers that break the contract, one per ``malformed:<case>`` behaviour.

A destination with such a behaviour still stores what it is sent, exactly as
``accept`` does (so settling by idempotency key finds the one copy), but its answer
to the POST (and to a status read by GUID) is spoiled in one way. The look-up by
idempotency key, the changes feed and the directory answer as usual: they are how
a client recovers, and the feed is shared by every destination. The feed is spoiled
on its own (``PUT /_sim/changes {"malformed": case}``, one of ``FEED_CASES``).
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

CASES = {
    "no_guid": "a DocumentStatus without DocumentGuid",
    "not_json": "a JSON content type over a body that is not JSON",
    "wrong_type": "StatusCode as a string, DocumentGuid as a number",
    "unknown_status": "a StatusCode the contract does not define (4999)",
    "html_200": "an HTML page (a proxy's, say) with 200",
    "truncated": "the first half of the JSON body",
    "unknown_http": "HTTP 202, which the contract does not define",
}

# The cases that apply to a changes-feed page (the others spoil one document).
FEED_CASES = {"not_json", "html_200", "truncated", "unknown_http"}


def malformed_answer(case: str, body: dict[str, Any], status: int) -> Response:
    """The spoiled answer for ``case`` in place of ``body`` with ``status``."""
    spoiled = dict(body)
    if case == "no_guid":
        spoiled.pop("DocumentGuid", None)
    elif case == "wrong_type":
        spoiled["StatusCode"] = str(spoiled["StatusCode"])
        spoiled["DocumentGuid"] = 12345
    elif case == "unknown_status":
        spoiled["StatusCode"] = 4999
    elif case == "not_json":
        return Response(
            b"Document received", status=status, mimetype="application/json"
        )
    elif case == "html_200":
        return Response(
            b"<html><body><h1>Request accepted</h1></body></html>",
            status=200,
            mimetype="text/html",
        )
    elif case == "truncated":
        text = json.dumps(body).encode()
        return Response(
            text[: len(text) // 2], status=status, mimetype="application/json"
        )
    elif case == "unknown_http":
        status = 202
    return Response(json.dumps(spoiled), status=status, mimetype="application/json")
