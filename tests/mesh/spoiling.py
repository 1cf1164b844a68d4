"""An HTTPS proxy on loopback in front of the real mesh-sandbox that passes every
request through and spoils the answers to chosen operations: the sandbox still
does what it was asked (an upload is stored), only its answer is broken."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import trustme
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# operation -> (method, path pattern, the member its answer is about)
OPERATIONS = {
    "upload": ("POST", r"/messageexchange/[^/]+/outbox$", "message_id"),
    "inbox": ("GET", r"/messageexchange/[^/]+/inbox$", "messages"),
    "retrieve": ("GET", r"/messageexchange/[^/]+/inbox/[^/]+$", None),
    "tracking": ("GET", r"/messageexchange/[^/]+/outbox/tracking$", "message_id"),
    "lookup": ("GET", r"/messageexchange/endpointlookup/.+", "results"),
}
CASES = ("no_member", "wrong_type", "not_json", "html", "truncated")
HOP_BY_HOP = {
    "connection",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "keep-alive",
    "host",
    "server",
    "date",
}


@dataclass
class SpoilingProxy:
    upstream: str
    upstream_ca: str
    spoil: dict[str, str] = field(default_factory=dict)
    url: str = ""
    ca_path: Path | None = None

    def _operation(self, request: Request) -> str | None:
        for name, (method, pattern, _member) in OPERATIONS.items():
            if request.method == method and re.match(pattern, request.path):
                return name
        return None

    def __call__(self, environ, start_response):
        request = Request(environ)
        answer = requests.request(
            request.method,
            self.upstream + request.full_path.rstrip("?"),
            headers={
                k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
            },
            data=request.get_data(),
            verify=self.upstream_ca,
            timeout=10,
            allow_redirects=False,
        )
        headers = [
            (k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP
        ]
        operation = self._operation(request)
        case = self.spoil.get(operation or "")
        if case and answer.ok:
            response = _spoiled(operation, case, answer, headers)
        else:
            response = Response(
                answer.content, status=answer.status_code, headers=headers
            )
        return response(environ, start_response)


def _spoiled(operation: str, case: str, answer, headers) -> Response:
    member = OPERATIONS[operation][2]
    if operation == "retrieve":
        # The message's own headers are what a retrieval answers with.
        kept = [(k, v) for k, v in headers if k.lower() != "mex-messagetype"]
        if case == "wrong_type":
            kept = [*kept, ("Mex-MessageType", "LETTER")]
        return Response(answer.content, status=answer.status_code, headers=kept)
    if case == "not_json":
        body, media_type = b"message accepted", "application/vnd.mesh.v2+json"
    elif case == "html":
        body, media_type = b"<html><body>OK</body></html>", "text/html"
    elif case == "truncated":
        body = answer.content[: len(answer.content) // 2]
        media_type = "application/vnd.mesh.v2+json"
    else:
        data = answer.json()
        if case == "no_member":
            data.pop(member, None)
        else:
            data[member] = 12345
        body, media_type = json.dumps(data).encode(), "application/vnd.mesh.v2+json"
    return Response(body, status=answer.status_code, content_type=media_type)


@contextmanager
def spoiling_proxy(sandbox, workdir: Path) -> Iterator[SpoilingProxy]:
    """The proxy over TLS (its own throwaway CA) on a free loopback port."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    workdir.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (workdir / n for n in ("ca.pem", "c.pem", "k.pem"))
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    proxy = SpoilingProxy(upstream=sandbox.url, upstream_ca=str(sandbox.ca_path))
    server = make_server(
        "127.0.0.1",
        0,
        proxy,
        threaded=True,
        ssl_context=(str(cert_path), str(key_path)),
    )
    proxy.url = f"https://127.0.0.1:{server.server_port}"
    proxy.ca_path = ca_path
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        thread.join(timeout=5)
