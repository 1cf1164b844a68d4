"""What docflow answers in FHIR: a document as a DocumentReference, and the
server's CapabilityStatement. Both are checked against the R4 models before they go.

A document read back carries no patient details (as the REST API's detail): no
subject, no description. Its lifecycle state is in the extension
:data:`LIFECYCLE_EXTENSION` (``valueCode``: ``submitted``, ``received``,
``accepted``...), FHIR's ``status`` says whether it still stands (``current``),
was replaced by a corrected version (``superseded``, whatever became of it) or was
withdrawn (``entered-in-error``), and ``docStatus`` whether it is itself a correction
(``amended``) or not (``final``).
"""

from __future__ import annotations

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference

from docflow.api.fhir.terminology import DOCUMENT_TYPES, ODS_SYSTEM, SNOMED_SYSTEM
from docflow.models import Document, DocumentStatus, PayloadVersion

FHIR_BASE = "/fhir/R4"
STRUCTURE_BASE = "https://docflow.nhs.invalid/fhir/StructureDefinition/"
LIFECYCLE_EXTENSION = STRUCTURE_BASE + "document-lifecycle-state"
DESTINATION_EXTENSION = STRUCTURE_BASE + "document-destination"
UK_CORE_DOCUMENT_REFERENCE = (
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-DocumentReference"
)
# The first SNOMED CT concept for each document type, to name it on the way out.
_CODE_FOR_TYPE: dict[str, tuple[str, str]] = {}
for _code, (_type, _display) in DOCUMENT_TYPES.items():
    _CODE_FOR_TYPE.setdefault(str(_type), (_code, _display))


def document_reference_location(document: Document) -> str:
    return f"{FHIR_BASE}/DocumentReference/{document.public_id}"


def _instant(value) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fhir_status(document: Document, *, superseded: bool) -> str:
    if superseded:
        return "superseded"
    if document.status == DocumentStatus.CANCELLED:
        return "entered-in-error"
    return "current"


def document_reference_body(
    *,
    document: Document,
    payload: PayloadVersion | None,
    superseded: bool,
) -> dict:
    """The document as a DocumentReference (no patient details), model-checked."""
    code = _CODE_FOR_TYPE.get(document.document_type)
    body: dict = {
        "resourceType": "DocumentReference",
        "id": str(document.public_id),
        "meta": {
            "lastUpdated": _instant(document.updated_at),
            "profile": [UK_CORE_DOCUMENT_REFERENCE],
        },
        "extension": [
            {"url": LIFECYCLE_EXTENSION, "valueCode": document.status},
            {
                "url": DESTINATION_EXTENSION,
                "valueIdentifier": {
                    "system": ODS_SYSTEM,
                    "value": document.destination_ods_code,
                },
            },
        ],
        "masterIdentifier": {"value": document.idempotency_key},
        "status": _fhir_status(document, superseded=superseded),
        "docStatus": "amended" if document.replaces_id else "final",
        "type": {
            **(
                {
                    "coding": [
                        {"system": SNOMED_SYSTEM, "code": code[0], "display": code[1]}
                    ]
                }
                if code
                else {}
            ),
            "text": document.get_document_type_display(),
        },
        "date": _instant(document.created_at),
        "custodian": {
            "identifier": {
                "system": ODS_SYSTEM,
                "value": document.sending_organisation.ods_code,
            },
            "display": document.sending_organisation.name,
        },
        "content": [{"attachment": _attachment(document, payload)}],
    }
    if document.replaces_id:
        body["relatesTo"] = [
            {
                "code": "replaces",
                "target": {
                    "reference": f"DocumentReference/{document.replaces.public_id}"
                },
            }
        ]
    DocumentReference.model_validate(body)
    return body


def _attachment(document: Document, payload: PayloadVersion | None) -> dict:
    if payload is None:
        return {"title": "The content has been purged."}
    # The bytes are read through the REST API, which asks for a reason and logs it.
    return {
        "contentType": payload.media_type,
        "size": payload.size_bytes,
        "url": f"/api/v1/documents/{document.public_id}/content",
    }


def capability_statement_body(*, software_version: str) -> dict:
    """What this server does in FHIR R4: create and read DocumentReference."""
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "docflow",
        "kind": "instance",
        "software": {"name": "docflow", "version": software_version},
        "implementation": {
            "description": "docflow: clinical documents to GP practices",
            "url": FHIR_BASE,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Submit a UK Core DocumentReference (patient in a contained "
                    "Patient with the registered practice as generalPractitioner, "
                    "the bytes as base64 attachment data); masterIdentifier is your "
                    "id and makes resending safe; relatesTo 'replaces' sends a "
                    "corrected version. Read it back for its status."
                ),
                "security": {
                    "description": (
                        "An API key as for the REST API: "
                        "'Authorization: Api-Key <prefix>.<secret>'."
                    )
                },
                "resource": [
                    {
                        "type": "DocumentReference",
                        "profile": UK_CORE_DOCUMENT_REFERENCE,
                        "interaction": [{"code": "create"}, {"code": "read"}],
                        "versioning": "no-version",
                        "readHistory": False,
                        "updateCreate": False,
                        "conditionalCreate": False,
                    }
                ],
            }
        ],
    }
    CapabilityStatement.model_validate(body)
    return body
