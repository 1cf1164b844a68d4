"""FHIR OperationOutcome answers: one issue per field, with the REST API's codes.

Each issue carries the field's FHIRPath in ``expression``, FHIR's own issue type in
``code``, and in ``details.coding`` the code the REST API's problem details give
for the same fault (``invalid_checksum``, ``required``, ``base64``...), so a source
system handles both interfaces alike. Messages never repeat what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpResponse
from fhir.resources.R4B.operationoutcome import OperationOutcome

from docflow.api.fhir.media import fhir_json_response

# The code system of docflow's error codes (the REST API's problem ``errors[].code``).
ERROR_CODE_SYSTEM = "https://docflow.nhs.invalid/fhir/CodeSystem/error-code"

# FHIR issue types (http://hl7.org/fhir/issue-type) for docflow's codes.
_ISSUE_TYPES = {
    "required": "required",
    "structure": "structure",
    "parse_error": "structure",
    "max_length": "too-long",
    "too_large": "too-long",
    "forbidden": "forbidden",
    "not_authenticated": "login",
    "authentication_failed": "login",
    "not_found": "not-found",
    "idempotency_conflict": "conflict",
    "not_supported": "not-supported",
    "throttled": "throttled",
    "intake_busy": "transient",
    "exception": "exception",
}


@dataclass(frozen=True)
class Issue:
    """One fault: where (a FHIRPath), the docflow code and a message with no value."""

    expression: str
    code: str
    detail: str

    def as_fhir(self) -> dict:
        issue = {
            "severity": "error",
            "code": _ISSUE_TYPES.get(self.code, "value"),
            "details": {
                "coding": [{"system": ERROR_CODE_SYSTEM, "code": self.code}],
                "text": self.detail,
            },
        }
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def operation_outcome(issues: list[Issue]) -> dict:
    """An OperationOutcome body, each issue once, checked against the R4 model."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for issue in issues:
        if (issue.expression, issue.code) not in seen:
            seen.add((issue.expression, issue.code))
            unique.append(issue)
    body = {
        "resourceType": "OperationOutcome",
        "issue": [issue.as_fhir() for issue in unique],
    }
    OperationOutcome.model_validate(body)
    return body


def outcome_response(
    *,
    status_code: int,
    issues: list[Issue],
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """An OperationOutcome as an ``application/fhir+json`` response."""
    return fhir_json_response(
        operation_outcome(issues), status_code=status_code, headers=headers
    )
