"""The code systems and identifiers docflow's FHIR interface speaks, and how a
resource's structural faults (as the R4 models find them) become issues."""

from __future__ import annotations

from pydantic import ValidationError

from docflow.api.fhir.outcomes import Issue
from docflow.models import DocumentType, Gender

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED_SYSTEM = "http://snomed.info/sct"
ROOT = "DocumentReference"

# SNOMED CT document types docflow accepts, and the document type each is.
DOCUMENT_TYPES: dict[str, tuple[str, str]] = {
    "373942005": (DocumentType.DISCHARGE_SUMMARY, "Discharge summary"),
    "823691000000103": (DocumentType.CLINIC_LETTER, "Clinical letter"),
    "371531000": (DocumentType.CLINIC_LETTER, "Report of clinical encounter"),
    "4241000179101": (DocumentType.RESULT, "Laboratory report"),
    "3457005": (DocumentType.REFERRAL, "Patient referral"),
}
# FHIR's administrative genders and docflow's.
GENDERS = {
    "male": Gender.MALE,
    "female": Gender.FEMALE,
    "other": Gender.OTHER,
    "unknown": Gender.UNKNOWN,
}


def _pydantic_path(loc: tuple) -> str:
    path = ROOT
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{str(part).removesuffix('__ext')}"
    return path


def structure_issues(error: ValidationError) -> list[Issue]:
    """The model's refusals, in our words: its messages may quote what was sent."""
    issues = []
    for item in error.errors(include_input=False, include_url=False):
        kind = item["type"]
        if kind == "missing":
            issues.append(
                Issue(_pydantic_path(item["loc"]), "required", "This is required.")
            )
        elif kind == "extra_forbidden":
            issues.append(
                Issue(
                    _pydantic_path(item["loc"]),
                    "structure",
                    "Not an element of this resource.",
                )
            )
        elif item["loc"][-2:-1] == ("attachment",) and item["loc"][-1] == "data":
            issues.append(
                Issue(_pydantic_path(item["loc"]), "base64", "Not valid base64.")
            )
        else:
            issues.append(
                Issue(
                    _pydantic_path(item["loc"]),
                    "invalid",
                    "Not a valid value for this element's FHIR type.",
                )
            )
    return issues
