"""Valid examples for the OpenAPI schema: what a successful intake looks like.

They are also what schemathesis sends first, so the fuzzing run covers the success
path (201, then 200 for the replay) and not only refusals. Every value is fictitious:
the NHS number is of the never-issued test range (accepted while
DOCFLOW_ALLOW_TEST_NHS_NUMBERS is on, as in development), the practice is the demo
directory's Riverside Surgery, and the content is a one-page PDF.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

# A one-page PDF saying "Example clinic letter", base64-encoded.
EXAMPLE_PDF_BASE64 = (
    "JVBERi0xLjQKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyAvUGFnZXMgMiAwIFIgPj4KZW5k"
    "b2JqCjIgMCBvYmoKPDwgL1R5cGUgL1BhZ2VzIC9LaWRzIFszIDAgUl0gL0NvdW50IDEgPj4K"
    "ZW5kb2JqCjMgMCBvYmoKPDwgL1R5cGUgL1BhZ2UgL1BhcmVudCAyIDAgUiAvTWVkaWFCb3gg"
    "WzAgMCA2MTIgNzkyXSAvQ29udGVudHMgNCAwIFIgL1Jlc291cmNlcyA8PCAvRm9udCA8PCAv"
    "RjEgNSAwIFIgPj4gPj4gPj4KZW5kb2JqCjQgMCBvYmoKPDwgL0xlbmd0aCA1MiA+PgpzdHJl"
    "YW0KQlQgL0YxIDEyIFRmIDcyIDcyMCBUZCAoRXhhbXBsZSBjbGluaWMgbGV0dGVyKSBUaiBF"
    "VAplbmRzdHJlYW0KZW5kb2JqCjUgMCBvYmoKPDwgL1R5cGUgL0ZvbnQgL1N1YnR5cGUgL1R5"
    "cGUxIC9CYXNlRm9udCAvSGVsdmV0aWNhID4+CmVuZG9iagp4cmVmCjAgNgowMDAwMDAwMDAw"
    "IDY1NTM1IGYgCjAwMDAwMDAwMDkgMDAwMDAgbiAKMDAwMDAwMDA1OCAwMDAwMCBuIAowMDAw"
    "MDAwMTE1IDAwMDAwIG4gCjAwMDAwMDAyNDEgMDAwMDAgbiAKMDAwMDAwMDM0MyAwMDAwMCBu"
    "IAp0cmFpbGVyCjw8IC9TaXplIDYgL1Jvb3QgMSAwIFIgPj4Kc3RhcnR4cmVmCjQxMwolJUVP"
    "Rgo="
)
# 999 000 0018: valid modulus 11, in NHS England's test range.
EXAMPLE_NHS_NUMBER = "9990000018"
EXAMPLE_ODS_CODE = "A81001"
EXAMPLE_IDEMPOTENCY_KEY = "epr-event-000123"

INTAKE_JSON_EXAMPLE = {
    "nhs_number": EXAMPLE_NHS_NUMBER,
    "patient_family_name": "Testpatient",
    "patient_given_names": "Alex",
    "patient_birth_date": "1950-03-01",
    "patient_gender": "Female",
    "document_type": "discharge_summary",
    "description": "Discharge summary",
    "event_date": "2024-01-15",
    "destination_ods_code": EXAMPLE_ODS_CODE,
    "sender_department": "Cardiology",
    "sender_person": "Dr A Consultant",
    "source_reference": "EPR-LETTER-000123",
    "file_name": "letter.pdf",
    "content": EXAMPLE_PDF_BASE64,
}

INTAKE_EXAMPLES = [
    OpenApiExample(
        "A one-page discharge summary",
        value=INTAKE_JSON_EXAMPLE,
        request_only=True,
        media_type="application/json",
    )
]
IDEMPOTENCY_KEY_EXAMPLES = [
    OpenApiExample("The source system's event id", value=EXAMPLE_IDEMPOTENCY_KEY)
]
