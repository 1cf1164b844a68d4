"""Response headers (Content-Security-Policy, framing, sniffing, referrer) and pages
that keep to the policy: no inline script, inline style or event handler attribute."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client

from tests.factories import UserFactory
from tests.security.conftest import CLINICAL, OPERATOR


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline <script>/<style> and style or
    on* attributes."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        # A JSON data block (json_script) is not run, so the policy does not apply.
        data_block = attributes.get("type") == "application/json"
        if tag == "script" and not attributes.get("src") and not data_block:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        directive.split()[0]: directive.split()[1:]
        for directive in header.split(";")
        if directive.strip()
    }


def test_the_policy_allows_only_this_origin_and_no_inline_code(client, db):
    response = client.get("/accounts/login/")

    directives = policy(response)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


def test_other_protective_headers(client, db):
    response = client.get("/accounts/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_api_answers_carry_the_policy_too(world):
    response = world.principals[CLINICAL].client().get("/api/v1/documents")

    assert "default-src 'none'" in response["Content-Security-Policy"]


def staff_pages(world):
    return {
        CLINICAL: ["/", "/work/", f"/work/items/{world.item.public_id}/"],
        OPERATOR: ["/ops/"],
    }


def test_staff_pages_have_no_inline_code_for_the_policy_to_block(world):
    found = {}
    for principal, paths in staff_pages(world).items():
        client = world.principals[principal].client()
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            assert "Content-Security-Policy" in response
            found[path] = inline_code(response.content.decode())
    anonymous = Client().get("/accounts/login/")
    found["/accounts/login/"] = inline_code(anonymous.content.decode())

    assert {path: problems for path, problems in found.items() if problems} == {}


def test_the_lockout_page_has_no_inline_code(db, settings):
    settings.AXES_FAILURE_LIMIT = 1
    UserFactory(username="ada")
    client = Client()

    response = client.post("/accounts/login/", {"username": "ada", "password": "x"})

    assert response.status_code == 429
    assert inline_code(response.content.decode()) == []


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>",
        '<div style="color: red">x</div>',
        '<a onclick="go()">x</a>',
        "<style>p {}</style>",
        '<script type="module">import "x";</script>',
    ],
)
def test_the_checker_finds_inline_code(html):
    assert inline_code(html) != []
