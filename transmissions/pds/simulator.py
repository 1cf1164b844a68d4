"""A PDS simulator: ``GET /Patient/{id}`` as the published specification
(``pds-api.yaml``, vendored) describes it, over demo patients for every case.

Run as its own process (``manage.py pds_simulator``) like the Connect simulator.
It checks the headers the specification requires, as the sandbox does:
``X-Request-ID`` (a UUID, mirrored back), ``X-Correlation-ID`` (optional,
mirrored back), ``Authorization`` (optional, as in the sandbox; if sent it must be
a bearer token) and answers ``application/fhir+json``: a Patient (200, with
``ETag``) or an OperationOutcome carrying the Spine error code.

Cases, by the patient's ``case`` in the patients file: registered, moved (a
registration since a recent date), no_practice, deceased, restricted (meta.security
``R``, no address, telecom or practice), superseded (answers with the superseding
record, whose id differs), invalidated (404 ``INVALIDATED_RESOURCE``), unavailable
(503), timeout (answers after ``hang_seconds``), throttled (429 with
Retry-After), malformed (a 200 that breaks the contract), not_json (a 200
that is an HTML page). Any other valid NHS
number is 404 ``RESOURCE_NOT_FOUND``; an invalid one is 400 ``INVALID_RESOURCE_ID``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nhs_number as nhs_numbers
from werkzeug.wrappers import Request, Response

DEMO_PATIENTS = Path(__file__).resolve().parent / "demo-patients.json"
FHIR_JSON = "application/fhir+json"
ERROR_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
PATIENT_PATH = re.compile(r"^/Patient(?:/(?P<id>[^/]*))?/?$")
# (HTTP status, FHIR issue code, display) for each Spine error code served.
ERRORS = {
    "INVALID_RESOURCE_ID": (400, "value", "Resource Id is invalid"),
    "UNSUPPORTED_SERVICE": (400, "invalid", "Unsupported Service"),
    "MISSING_VALUE": (400, "required", "Required value is missing"),
    "INVALID_VALUE": (400, "value", "Provided value is invalid"),
    "ACCESS_DENIED": (401, "forbidden", "Access Denied - Unauthorised"),
    "RESOURCE_NOT_FOUND": (404, "not-found", "Resource not found"),
    "INVALIDATED_RESOURCE": (
        404,
        "not-found",
        "Resource that has been marked as "
        "invalid was requested - invalid resources cannot be "
        "retrieved",
    ),
    "TOO_MANY_REQUESTS": (
        429,
        "throttled",
        "You have exceeded your application's rate limit",
    ),
    "SERVICE_UNAVAILABLE": (503, "transient", "Service unavailable"),
}


@dataclass
class PdsSimulator:
    """The WSGI application: demo patients by NHS number, and how long to hang."""

    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    hang_seconds: float = 15.0

    @classmethod
    def load(cls, path: Path | str = DEMO_PATIENTS) -> PdsSimulator:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            patients={p["nhs_number"]: p for p in data["patients"]},
            hang_seconds=float(data.get("hang_seconds", 15)),
        )

    def __call__(self, environ, start_response):
        request = Request(environ)
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        """The published contract's answer to one request."""
        matched = PATIENT_PATH.match(request.path)
        if matched is None:
            return outcome("RESOURCE_NOT_FOUND", "Unknown path.")
        if request.method not in ("GET", "HEAD"):
            response = outcome("UNSUPPORTED_SERVICE", "Only GET is served here.")
            response.status_code = 405
            response.headers["Allow"] = "GET"
            return response
        refused = self._refused_headers(request)
        if refused is not None:
            return refused
        mirrored = {"X-Request-Id": request.headers["X-Request-ID"]}
        if request.headers.get("X-Correlation-ID"):
            mirrored["X-Correlation-Id"] = request.headers["X-Correlation-ID"]
        response = self._patient_answer(matched.group("id"))
        response.headers.update(mirrored)
        return response

    def _refused_headers(self, request: Request) -> Response | None:
        authorization = request.headers.get("Authorization")
        if authorization is not None and not re.fullmatch(
            r"Bearer [\x21-\x7e]+", authorization
        ):
            return outcome("ACCESS_DENIED", "Invalid access token.")
        request_id = request.headers.get("X-Request-ID")
        if request_id is None:
            return outcome(
                "MISSING_VALUE",
                "Invalid request with error - "
                "X-Request-ID header must be supplied to access this "
                "resource",
            )
        if not UUID.match(request_id):
            return outcome(
                "INVALID_VALUE", "Invalid value - X-Request-ID header must be a UUID"
            )
        urid = request.headers.get("NHSD-Session-URID")
        if urid is not None and not urid.isdigit():
            return outcome("INVALID_VALUE", "Invalid value - NHSD-Session-URID")
        return None

    def _patient_answer(self, requested: str | None) -> Response:
        if not requested:
            return outcome("UNSUPPORTED_SERVICE", "Missing NHS number.")
        if not (
            len(requested) == 10
            and requested.isascii()
            and requested.isdigit()
            and nhs_numbers.is_valid(requested)
        ):
            return outcome("INVALID_RESOURCE_ID", "Invalid NHS number.")
        patient = self.patients.get(requested)
        if patient is None:
            return outcome("RESOURCE_NOT_FOUND", "Patient not found.")
        case = patient.get("case", "registered")
        match case:
            case "invalidated":
                return outcome("INVALIDATED_RESOURCE", "Patient invalidated.")
            case "unavailable":
                return outcome("SERVICE_UNAVAILABLE", "The service is unavailable.")
            case "throttled":
                response = outcome("TOO_MANY_REQUESTS", "Rate limit exceeded.")
                response.headers["Retry-After"] = "5"
                return response
            case "malformed":
                # A 200 missing the id, with a practice reference with no code.
                body = {
                    "resourceType": "Patient",
                    "generalPractitioner": [{"identifier": {"system": "x"}}],
                }
                return Response(json.dumps(body), status=200, content_type=FHIR_JSON)
            case "not_json":
                # A proxy's error page in place of the answer.
                return Response(
                    "<html><body>Bad gateway</body></html>",
                    status=200,
                    content_type="text/html",
                )
            case "timeout":
                time.sleep(self.hang_seconds)
            case "superseded":
                patient = self.patients[patient["superseded_by"]]
        resource = patient_resource(patient)
        response = Response(json.dumps(resource), status=200, content_type=FHIR_JSON)
        response.headers["ETag"] = f'W/"{resource["meta"]["versionId"]}"'
        return response


def outcome(code: str, diagnostics: str) -> Response:
    """An OperationOutcome with one Spine error code, at that code's status."""
    status, issue_code, display = ERRORS[code]
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": issue_code,
                "details": {
                    "coding": [
                        {
                            "system": ERROR_SYSTEM,
                            "version": "1",
                            "code": code,
                            "display": display,
                        }
                    ]
                },
                "diagnostics": diagnostics,
            }
        ],
    }
    return Response(json.dumps(body), status=status, content_type=FHIR_JSON)


def patient_resource(patient: dict[str, Any]) -> dict[str, Any]:
    """A demo patient as the FHIR Patient PDS returns (restricted: no practice)."""
    restricted = bool(patient.get("restricted"))
    nhs_number = patient["nhs_number"]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": nhs_number,
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}
        ],
        "meta": {
            "versionId": str(patient.get("version", 1)),
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R" if restricted else "U",
                    "display": "restricted" if restricted else "unrestricted",
                }
            ],
        },
        "name": [
            {
                "id": "1",
                "use": "usual",
                "family": patient.get("family", "Unknown"),
                "given": list(patient.get("given", [])),
            }
        ],
        "gender": patient.get("gender", "unknown"),
        "birthDate": patient.get("birth_date", "1900-01-01"),
    }
    if patient.get("deceased"):
        resource["deceasedDateTime"] = patient["deceased"]
    if patient.get("practice") and not restricted:
        resource["generalPractitioner"] = [
            {
                "id": "1",
                "type": "Organization",
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": patient["practice"],
                    "period": {"start": patient["since"]},
                },
            }
        ]
    return resource
