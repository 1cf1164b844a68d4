"""The simulator's HTTP surface: the Connect contract plus a small control API.

Over 500 lines because it is one HTTP surface: every route of the contract and
the control API side by side, each a few lines over ``store`` and ``behaviours``.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from transmissions.channels.connect.simulator.behaviours import (
    Behaviour,
    BehaviourError,
)
from transmissions.channels.connect.simulator.malformed import (
    FEED_CASES,
    malformed_answer,
)
from transmissions.channels.connect.simulator.store import (
    SimulatorStore,
    Timings,
    status_body,
)
from transmissions.channels.connect.simulator.validation import (
    failure_body,
    validate_inbound,
)

ENDPOINT_TYPES = {
    "docman10": "Docman10",
    "docman7": "Docman7",
    "emis_mesh": "EmisMesh",
    "tpp_mesh": "TppMesh",
}
TOKEN_LIFETIME_SECONDS = 3600


@dataclass
class SimOrganisation:
    ods_code: str
    name: str
    endpoint_type: str
    behaviour_spec: str
    behaviour: Behaviour
    max_file_size_bytes: int


@dataclass
class Scenario:
    """Clients, organisations and timings, loaded from a JSON scenario file."""

    clients: dict[str, dict[str, str]] = field(default_factory=dict)
    organisations: dict[str, SimOrganisation] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    default_max_file_size_bytes: int = 20 * 1024 * 1024
    flaky_hang_seconds: float = 5.0
    seed: int = 1

    @classmethod
    def load(cls, path: Path | str) -> Scenario:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        scenario = cls(
            timings=Timings(
                receive_to_deliver=float(data.get("receive_to_deliver_seconds", 60)),
                deliver_to_final=float(data.get("deliver_to_final_seconds", 600)),
                multiplier=float(data.get("time_multiplier", 1)),
            ),
            default_max_file_size_bytes=int(
                data.get("default_max_file_size_bytes", 20 * 1024 * 1024)
            ),
            flaky_hang_seconds=float(data.get("flaky_hang_seconds", 5)),
            seed=int(data.get("seed", 1)),
        )
        for client in data.get("clients", []):
            scenario.clients[client["client_id"]] = {
                "secret": client["client_secret"],
                "sending_ods_code": client.get("sending_ods_code", ""),
            }
        for org in data.get("organisations", []):
            scenario.set_organisation(
                ods_code=org["ods_code"],
                name=org.get("name", org["ods_code"]),
                endpoint_type=org.get("endpoint_type", "docman10"),
                behaviour_spec=org.get("behaviour", "accept"),
            )
        return scenario

    def set_organisation(
        self, *, ods_code: str, name: str, endpoint_type: str, behaviour_spec: str
    ) -> SimOrganisation:
        behaviour = Behaviour.parse(behaviour_spec)
        if endpoint_type not in ENDPOINT_TYPES:
            raise BehaviourError(f"unknown endpoint type {endpoint_type!r}")
        organisation = SimOrganisation(
            ods_code=ods_code.upper(),
            name=name,
            endpoint_type=endpoint_type,
            behaviour_spec=behaviour_spec,
            behaviour=behaviour,
            max_file_size_bytes=behaviour.size_limit
            or self.default_max_file_size_bytes,
        )
        self.organisations[organisation.ods_code] = organisation
        return organisation


def _json(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers
    )


def _problem(status: int, title: str, detail: str = "", **headers: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return Response(
        json.dumps(body),
        status=status,
        content_type="application/problem+json",
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


class ConnectSimulator:
    """A WSGI application that behaves like Docman Connect."""

    def __init__(self, *, scenario: Scenario, state_path: Path | str) -> None:
        self.scenario = scenario
        self.store = SimulatorStore(state_path, scenario.timings)
        # Reproducible chaos, not security.
        self._random = random.Random(scenario.seed)  # noqa: S311
        self._random_lock = threading.Lock()
        # A ``malformed`` case every changes-feed page is spoiled with ("" = none).
        self.changes_malformed = ""
        # While down, every contract call answers 503 (the control API still works).
        self.down = False
        self.url_map = Map(
            [
                Rule("/oauth2/token", endpoint="token", methods=["POST"]),
                # The OAuth password grant, as docman-fake serves it (the
                # client's DOCFLOW_CONNECT_TOKEN_GRANT=password).
                Rule("/token", endpoint="password_token", methods=["POST"]),
                Rule(
                    "/api/organisations/<ods_code>",
                    endpoint="organisation",
                    methods=["GET"],
                ),
                Rule("/api/documents", endpoint="documents_post", methods=["POST"]),
                Rule("/api/documents", endpoint="documents_find", methods=["GET"]),
                Rule("/api/documents/changes", endpoint="changes", methods=["GET"]),
                Rule("/api/documents/<guid>", endpoint="document_get", methods=["GET"]),
                Rule(
                    "/api/documents/<guid>/resend", endpoint="resend", methods=["POST"]
                ),
                Rule(
                    "/api/documents/<guid>/resolve",
                    endpoint="resolve",
                    methods=["POST"],
                ),
                Rule("/_sim/health", endpoint="sim_health", methods=["GET"]),
                Rule("/_sim/stats", endpoint="sim_stats", methods=["GET"]),
                Rule(
                    "/_sim/organisations/<ods_code>",
                    endpoint="sim_org",
                    methods=["PUT"],
                ),
                Rule(
                    "/_sim/clients/<client_id>", endpoint="sim_client", methods=["PUT"]
                ),
                Rule("/_sim/time", endpoint="sim_time", methods=["PUT"]),
                Rule("/_sim/changes", endpoint="sim_changes", methods=["PUT"]),
                Rule("/_sim/outage", endpoint="sim_outage", methods=["PUT"]),
                Rule("/_sim/reset", endpoint="sim_reset", methods=["POST"]),
            ],
            strict_slashes=False,
        )

    # plumbing

    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
            if self.down and not endpoint.startswith("sim_"):
                response = _problem(503, "Service Unavailable", "Connect is down.")
                return response(environ, start_response)
            response = getattr(self, f"on_{endpoint}")(request, **args)
        except NotFound:
            response = _problem(404, "Not Found")
        except MethodNotAllowed as exc:
            response = _problem(405, "Method Not Allowed")
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
        except HTTPException as exc:
            response = _problem(exc.code or 500, exc.name)
        return response(environ, start_response)

    def _client(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.store.token_client(token.strip())

    def _draw(self) -> float:
        with self._random_lock:
            return self._random.random()

    # contract

    def _grant(
        self,
        request: Request,
        *,
        grant: str,
        id_field: str,
        secret_field: str,
        token_type: str,
    ) -> Response:
        """Check one OAuth grant's form against the clients; issue a token."""
        form = request.form
        if form.get("grant_type") != grant or any(
            name not in form for name in (id_field, secret_field)
        ):
            return _problem(
                400,
                "Bad Request",
                f"Send grant_type={grant}, {id_field} and {secret_field}.",
            )
        client = self.scenario.clients.get(form[id_field])
        if client is None or form[secret_field] != client["secret"]:
            return _problem(401, "Unauthorized", "Invalid client credentials.")
        token = self.store.token_issue(
            client_id=form[id_field], lifetime_seconds=TOKEN_LIFETIME_SECONDS
        )
        return _json(
            {
                "access_token": token,
                "token_type": token_type,
                "expires_in": TOKEN_LIFETIME_SECONDS,
            }
        )

    def on_token(self, request: Request) -> Response:
        return self._grant(
            request,
            grant="client_credentials",
            id_field="client_id",
            secret_field="client_secret",  # noqa: S106 (field names)
            token_type="Bearer",  # noqa: S106 (field names)
        )

    def on_password_token(self, request: Request) -> Response:
        # As docman-fake answers it: a lower-case token type.
        return self._grant(
            request,
            grant="password",
            id_field="username",
            secret_field="password",  # noqa: S106 (field names)
            token_type="bearer",  # noqa: S106 (field names)
        )

    def on_organisation(self, request: Request, ods_code: str) -> Response:
        if self._client(request) is None:
            return _problem(401, "Unauthorized")
        if len(ods_code) > 10:
            return _problem(
                400, "Bad Request", "An ODS code has at most 10 characters."
            )
        organisation = self.scenario.organisations.get(ods_code.upper())
        if organisation is None:
            return _problem(404, "Not Found", "No such Connect organisation.")
        return _json(
            {
                "OdsCode": organisation.ods_code,
                "Name": organisation.name,
                "IsActive": organisation.behaviour.is_active,
                "IsReceivingOrganisation": organisation.behaviour.is_receiving,
                "EndpointType": ENDPOINT_TYPES[organisation.endpoint_type],
                "MaxFileSizeBytes": organisation.max_file_size_bytes,
            }
        )

    def on_documents_post(self, request: Request) -> Response:
        client_id = self._client(request)
        if client_id is None:
            return _problem(401, "Unauthorized")
        key = request.headers.get("Idempotency-Key", "")
        if not key or len(key) > 64:
            return _json(failure_body(["SIM02"]), status=400)
        raw = request.get_data()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        codes, content = validate_inbound(body)
        if codes:
            return _json(failure_body(codes), status=400)
        organisation = self.scenario.organisations.get(body["RecipientOdsCode"])
        if organisation is None or not organisation.behaviour.is_active:
            return _json(failure_body(["DC02"]), status=400)
        if not organisation.behaviour.is_receiving:
            return _json(failure_body(["DC03"]), status=400)
        if content is not None and len(content) > organisation.max_file_size_bytes:
            return _json(failure_body(["SIM01"]), status=400)
        return self._create(
            client_id=client_id,
            key=key,
            body_hash=hashlib.sha256(raw).hexdigest(),
            organisation=organisation,
            resend_of=None,
        )

    def _create(
        self,
        *,
        client_id: str,
        key: str,
        body_hash: str,
        organisation: SimOrganisation,
        resend_of: str | None,
    ) -> Response:
        behaviour = organisation.behaviour
        hang = 0.0
        if behaviour.kind == "flaky":
            draw = self._draw()
            third = behaviour.flaky_share / 3
            if draw < third:
                return _problem(503, "Service Unavailable", "Try again later.")
            if draw < 2 * third:
                return _problem(429, "Too Many Requests", Retry_After="1")
            if draw < behaviour.flaky_share:
                hang = self.scenario.flaky_hang_seconds  # stored, answer too late
        try:
            row, created = self.store.document_create(
                client_id=client_id,
                key=key,
                body_hash=body_hash,
                recipient=organisation.ods_code,
                behaviour=behaviour,
                behaviour_spec=organisation.behaviour_spec,
                resend_of=resend_of,
            )
        except KeyError:
            return _problem(
                409, "Conflict", "Idempotency-Key reused with another body."
            )
        if behaviour.kind == "slow":
            hang = max(hang, behaviour.slow_seconds)
        if hang:
            time.sleep(hang)
        status = 201 if created else 200
        if behaviour.malformed:
            # Stored as for ``accept``; only the answer is spoiled.
            return malformed_answer(behaviour.malformed, status_body(row), status)
        return _json(status_body(row), status=status)

    def on_documents_find(self, request: Request) -> Response:
        client_id = self._client(request)
        if client_id is None:
            return _problem(401, "Unauthorized")
        key = request.args.get("idempotencyKey")
        if key is None:
            return _problem(400, "Bad Request", "idempotencyKey is required.")
        row = self.store.document_find_by_key(client_id=client_id, key=key)
        return _json({"Documents": [status_body(row)] if row else []})

    def on_changes(self, request: Request) -> Response:
        if self._client(request) is None:
            return _problem(401, "Unauthorized")
        try:
            limit = int(request.args.get("limit", 500))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return _problem(400, "Bad Request", "limit must be between 1 and 1000.")
        # The cursor is opaque to clients; one we never issued starts from the top.
        raw_cursor = request.args.get("cursor", "")
        cursor = int(raw_cursor) if raw_cursor.isascii() and raw_cursor.isdigit() else 0
        changes, next_cursor = self.store.changes_since(cursor=cursor, limit=limit)
        body = {
            "Changes": [status_body(c) for c in changes],
            "NextCursor": str(next_cursor),
        }
        if self.changes_malformed:
            return malformed_answer(self.changes_malformed, body, 200)
        return _json(body)

    def on_document_get(self, request: Request, guid: str) -> Response:
        if self._client(request) is None:
            return _problem(401, "Unauthorized")
        row = self.store.document_get(guid)
        if row is None:
            return _problem(404, "Not Found")
        organisation = self.scenario.organisations.get(row["recipient"])
        if organisation is not None and organisation.behaviour.malformed:
            return malformed_answer(
                organisation.behaviour.malformed, status_body(row), 200
            )
        return _json(status_body(row))

    def on_resend(self, request: Request, guid: str) -> Response:
        client_id = self._client(request)
        if client_id is None:
            return _problem(401, "Unauthorized")
        original = self.store.document_get(guid)
        if original is None:
            return _problem(404, "Not Found")
        if original["status_code"] not in (4005, 5000, 7000):
            return _problem(409, "Conflict", "Only 4005, 5000 and 7000 can be resent.")
        key = request.headers.get("Idempotency-Key", "")
        if not key or len(key) > 64:
            return _json(failure_body(["SIM02"]), status=400)
        try:
            body = json.loads(request.get_data() or b"{}") or {}
        except ValueError:
            body = {}
        recipient = (
            body.get("RecipientOdsCode") if isinstance(body, dict) else None
        ) or (original["recipient"])
        organisation = self.scenario.organisations.get(str(recipient).upper())
        if organisation is None or not organisation.behaviour.is_active:
            return _json(failure_body(["DC02"]), status=400)
        if not organisation.behaviour.is_receiving:
            return _json(failure_body(["DC03"]), status=400)
        body_hash = hashlib.sha256(
            f"resend:{guid}:{organisation.ods_code}".encode()
        ).hexdigest()
        return self._create(
            client_id=client_id,
            key=key,
            body_hash=body_hash,
            organisation=organisation,
            resend_of=guid,
        )

    def on_resolve(self, request: Request, guid: str) -> Response:
        if self._client(request) is None:
            return _problem(401, "Unauthorized")
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            body = None
        note = body.get("ResolutionNote") if isinstance(body, dict) else None
        if not isinstance(note, str) or len(note) > 255:
            return _problem(
                400, "Bad Request", "A ResolutionNote of up to 255 characters."
            )
        try:
            row = self.store.document_resolve(guid)
        except LookupError:
            return _problem(404, "Not Found")
        except ValueError:
            return _problem(409, "Conflict", "The document is not rejected.")
        return _json(status_body(row))

    # control API (not part of the contract)

    def on_sim_health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    def on_sim_stats(self, request: Request) -> Response:
        return _json(self.store.document_count())

    def on_sim_org(self, request: Request, ods_code: str) -> Response:
        body = request.get_json(silent=True) or {}
        current = self.scenario.organisations.get(ods_code.upper())
        try:
            organisation = self.scenario.set_organisation(
                ods_code=ods_code,
                name=body.get("name") or (current.name if current else ods_code),
                endpoint_type=body.get("endpoint_type")
                or (current.endpoint_type if current else "docman10"),
                behaviour_spec=body.get("behaviour", "accept"),
            )
        except BehaviourError as exc:
            return _problem(400, "Bad Request", str(exc))
        return _json(
            {
                "ods_code": organisation.ods_code,
                "behaviour": organisation.behaviour_spec,
            }
        )

    def on_sim_client(self, request: Request, client_id: str) -> Response:
        body = request.get_json(silent=True) or {}
        secret = body.get("client_secret")
        if not secret:
            return _problem(400, "Bad Request", "client_secret is required.")
        self.scenario.clients[client_id] = {
            "secret": secret,
            "sending_ods_code": body.get("sending_ods_code", ""),
        }
        revoked = self.store.tokens_revoke(client_id=client_id)
        return _json({"client_id": client_id, "tokens_revoked": revoked})

    def on_sim_time(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        try:
            multiplier = float(body["multiplier"])
        except (KeyError, TypeError, ValueError):
            return _problem(400, "Bad Request", "multiplier (number) is required.")
        self.store.timings = replace(self.store.timings, multiplier=multiplier)
        return _json({"multiplier": multiplier})

    def on_sim_changes(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        case = body.get("malformed", "")
        if case and case not in FEED_CASES:
            allowed = ", ".join(sorted(FEED_CASES))
            return _problem(400, "Bad Request", f"malformed must be one of {allowed}.")
        self.changes_malformed = case
        return _json({"malformed": case})

    def on_sim_outage(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        if not isinstance(body.get("down"), bool):
            return _problem(400, "Bad Request", "down (true or false) is required.")
        self.down = body["down"]
        return _json({"down": self.down})

    def on_sim_reset(self, request: Request) -> Response:
        self.store.reset()
        return _json({"reset": True})
